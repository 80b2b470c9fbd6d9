"""TF Serving's models.config: parsed with the real proto, checked, or built from flags.

The file is a text-format `tensorflow.serving.ModelServerConfig`; parsing it
with the proto from tensorflow-serving-api means a file the embedded server
accepts is one tensorflow_model_server accepts too (and the other way round).
"""

import os

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from lmk_tf.errors import ConfigError

ModelServerConfig = model_server_config_pb2.ModelServerConfig


def parse_model_config(text: str, *, source: str = "<string>") -> ModelServerConfig:
    """Text-format ModelServerConfig -> proto; errors name `source` and the line."""
    config = ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        # The proto library's message starts with "line:col : "; say which file instead.
        where = f"{e.GetLine()}:{e.GetColumn()}"
        raise ConfigError(f"{source}:{where}: {str(e).removeprefix(where + ' : ')}") from None
    check_model_config(config, source=source)
    return config


def read_model_config(path: str) -> ModelServerConfig:
    """Read and check a models.config file."""
    try:
        with open(path, encoding="utf-8") as f:
            return parse_model_config(f.read(), source=path)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read model config: {e.strerror}") from None


def config_from_flags(model_name: str, model_base_path: str) -> ModelServerConfig:
    """The one-model config that --model_name/--model_base_path stand for."""
    if not model_base_path:
        raise ConfigError("--model_base_path is empty; give it or --model_config_file")
    config = ModelServerConfig()
    config.model_config_list.config.add(name=model_name or "default", base_path=model_base_path,
                                        model_platform="tensorflow")
    check_model_config(config, source="--model_name/--model_base_path")
    return config


def check_model_config(config: ModelServerConfig, *, source: str) -> None:
    """Reject what the proto allows but no server can serve, naming the model."""
    if config.WhichOneof("config") == "custom_model_config":
        raise ConfigError(f"{source}: custom_model_config is not supported; use model_config_list")
    seen = set()
    for model in config.model_config_list.config:
        where = f"{source}: model {model.name!r}"
        if not model.name:
            raise ConfigError(f"{source}: a model config has no name")
        if model.name in seen:
            raise ConfigError(f"{where} appears twice")
        seen.add(model.name)
        if not model.base_path:
            raise ConfigError(f"{where} has no base_path")
        if model.model_platform not in ("", "tensorflow"):  # TF Serving's only SavedModel platform
            raise ConfigError(f"{where} has model_platform {model.model_platform!r}; "
                              "only 'tensorflow' is supported")
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") == "latest" and policy.latest.num_versions < 0:
            raise ConfigError(f"{where}: latest.num_versions must be >= 0")
        if policy.WhichOneof("policy_choice") == "specific" and not policy.specific.versions:
            raise ConfigError(f"{where}: specific policy lists no versions")
        for label, version in model.version_labels.items():
            if version <= 0:
                raise ConfigError(f"{where}: version label {label!r} -> {version}; "
                                  "versions are positive integers")


def resolve_base_path(base_path: str) -> str:
    """Base paths are used as given (relative ones from the working directory), like TF Serving."""
    return os.path.abspath(base_path)
