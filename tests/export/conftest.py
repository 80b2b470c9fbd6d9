"""The tiny trained model exported once for the export tests."""

import pytest


@pytest.fixture(scope="session")
def exported(tiny_model_dir, tmp_path_factory):
    """saved_models/tiny/1 of the tiny model: a real export with every signature."""
    from lmk_tf.export.savedmodel import export

    base = tmp_path_factory.mktemp("saved_models") / "tiny"
    return export(tiny_model_dir, str(base))
