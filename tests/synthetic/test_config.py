"""SyntheticConfig refuses settings that cannot work, quoting the value."""

import pytest

from lmk_tf import synthetic
from lmk_tf.errors import ConfigError


def test_bad_config_raises_config_error_quoting_the_value():
    with pytest.raises(ConfigError, match="1.5"):
        synthetic.SyntheticConfig(p_outside=1.5)
    with pytest.raises(ConfigError, match=r"\(3.0, 1.0\)"):
        synthetic.SyntheticConfig(noise_sigma=(3.0, 1.0))
    with pytest.raises(ConfigError, match="90"):
        synthetic.SyntheticConfig(max_rotation_deg=90)
