"""models.config and the other deployment files parse with TF Serving's protos."""

import importlib.metadata
import os
import re

import pytest
from google.protobuf import text_format

from lmk_tf.errors import ConfigError
from lmk_tf.serving.manager import config_from_flags, parse_model_config, read_model_config
from tests.serving.tfs_protos import BatchingParameters, MonitoringConfig

SERVING = os.path.join(os.path.dirname(__file__), "..", "..", "serving")


def _read(name):
    with open(os.path.join(SERVING, name), encoding="utf-8") as f:
        return f.read()


def test_shipped_models_config_parses_with_the_real_proto():
    config = read_model_config(os.path.join(SERVING, "models.config"))
    models = {m.name: m for m in config.model_config_list.config}
    assert set(models) == {"isbi2015_ceph", "demo"}
    ceph = models["isbi2015_ceph"]
    assert ceph.base_path == "/models/isbi2015_ceph"
    assert ceph.model_platform == "tensorflow"
    assert list(ceph.model_version_policy.specific.versions) == [9, 10, 11]
    assert dict(ceph.version_labels) == {"stable": 10, "canary": 11}
    # "stable" must name a version that is committed, or the server has nothing to serve.
    shipped = os.path.join(SERVING, "..", "saved_models", "isbi2015_ceph", str(ceph.version_labels["stable"]))
    assert os.path.exists(os.path.join(shipped, "saved_model.pb"))
    assert models["demo"].model_version_policy.latest.num_versions == 1


def test_bad_syntax_names_file_and_line(tmp_path):
    path = tmp_path / "models.config"
    path.write_text('model_config_list {\n  config {\n    name: "a"\n    base_pth: "/x"\n  }\n}\n')
    with pytest.raises(ConfigError, match=re.escape(f"{path}:4:") + r".*base_pth"):
        read_model_config(str(path))


def test_unbalanced_braces_name_the_file(tmp_path):
    path = tmp_path / "broken.config"
    path.write_text('model_config_list {\n  config { name: "a" base_path: "/x" }\n')
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        read_model_config(str(path))


@pytest.mark.parametrize(
    "text, message",
    [
        ('model_config_list { config { name: "a" } }', "model 'a' has no base_path"),
        ('model_config_list { config { base_path: "/x" } }', "has no name"),
        ('model_config_list { config { name: "a" base_path: "/x" } '
         'config { name: "a" base_path: "/y" } }', "'a' appears twice"),
        ('model_config_list { config { name: "a" base_path: "/x" model_platform: "pytorch" } }',
         "model_platform 'pytorch'"),
        ('model_config_list { config { name: "a" base_path: "/x" '
         'version_labels { key: "stable" value: 0 } } }', "label 'stable' -> 0"),
    ],
)
def test_semantic_errors_name_the_model(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_model_config(text, source="test.config")


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read model config"):
        read_model_config(str(tmp_path / "nope.config"))


def test_config_from_flags_round_trips_through_text():
    config = config_from_flags("demo", "/tmp/models/demo")
    again = parse_model_config(text_format.MessageToString(config))
    assert again == config
    (model,) = again.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("demo", "/tmp/models/demo", "tensorflow")
    with pytest.raises(ConfigError, match="--model_base_path"):
        config_from_flags("demo", "")


def test_batching_parameters_parse_and_are_consistent():
    params = text_format.Parse(_read("batching_parameters.txt"), BatchingParameters())
    assert params.max_batch_size.value == 8
    sizes = list(params.allowed_batch_sizes)
    # TF Serving's rules when given: increasing, and the last equals max_batch_size.
    assert sizes == sorted(sizes) and (not sizes or sizes[-1] == params.max_batch_size.value)
    assert params.num_batch_threads.value >= 1
    # Padding would change answers (rows of another image) or cost whole predictions.
    assert not params.pad_variable_length_inputs and not sizes


def test_the_test_batching_proto_rejects_unknown_fields():
    with pytest.raises(text_format.ParseError):
        text_format.Parse("max_batch_size { value: 8 }\nmax_batch: 3", BatchingParameters())


def test_monitoring_config_enables_prometheus():
    config = text_format.Parse(_read("monitoring.config"), MonitoringConfig())
    assert config.prometheus_config.enable
    assert config.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_container_files_use_the_tf_version_and_existing_configs():
    tag = f"tensorflow/serving:{importlib.metadata.version('tensorflow')}"
    compose, k8s = _read("docker-compose.yml"), _read("k8s.yaml")
    assert tag in compose and tag in k8s
    # Every config file the compose file mounts exists next to it.
    for source in re.findall(r"- \./([\w.]+):/config/", compose):
        assert os.path.isfile(os.path.join(SERVING, source)), source
    assert "--model_config_file=/config/models.config" in compose
    assert "path: /v1/models/isbi2015_ceph, port: 8501" in k8s
    assert "tcpSocket: {port: 8500}" in k8s
