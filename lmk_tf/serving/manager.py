"""Which model versions are loaded, kept in step with models.config (parsed here) and the disk.

As TF Serving's file-system source and version policy (latest N, all, specific): a version found
by polling loads once its files stayed the same for one poll, a failed load is retried when they
change, and a version no longer wanted or removed is unloaded only once every wanted one is
AVAILABLE, so neither a swap nor a removal leaves a gap. Requests are answered while loading.
"""

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from lmk_tf.errors import ConfigError, LmkError
from lmk_tf.serving import servable
from lmk_tf.serving.validation import Limits, NotFound

log = logging.getLogger(__name__)

# States as GetModelStatus names them (ModelVersionStatus.State).
LOADING, AVAILABLE, END = "LOADING", "AVAILABLE", "END"
# models.config is a text-format ModelServerConfig, parsed with tensorflow-serving-api's proto:
# a file this server accepts is one tensorflow_model_server accepts, and the other way round.
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
    names = [m.name for m in config.model_config_list.config]
    for model in config.model_config_list.config:
        where, policy = f"{source}: model {model.name!r}", model.model_version_policy
        choice = policy.WhichOneof("policy_choice")
        labels = [f"{label!r} -> {v}" for label, v in model.version_labels.items() if v <= 0]
        for failed, message in [
            (not model.name, f"{source}: a model config has no name"),
            (names.count(model.name) > 1, f"{where} appears twice"),
            (not model.base_path, f"{where} has no base_path"),
            (model.model_platform not in ("", "tensorflow"),  # TF Serving's only SavedModel platform
             f"{where} has model_platform {model.model_platform!r}; only 'tensorflow' is supported"),
            (choice == "latest" and policy.latest.num_versions < 0, f"{where}: latest.num_versions must be >= 0"),
            (choice == "specific" and not policy.specific.versions, f"{where}: specific policy lists no versions"),
            (labels, f"{where}: version label {''.join(labels[:1])}; versions are positive integers"),
        ]:
            if failed:
                raise ConfigError(message)


class VersionStatus(NamedTuple):
    """What GetModelStatus reports for one version; `error` says why its last load failed."""

    version: int
    state: str
    error: str = ""


@dataclasses.dataclass
class _Model:
    config: object  # ModelConfig proto
    base_path: str
    status: dict[int, VersionStatus] = dataclasses.field(default_factory=dict)
    served: dict[int, servable.ServedVersion] = dataclasses.field(default_factory=dict)
    seen: dict[int, tuple] = dataclasses.field(default_factory=dict)  # fingerprint at the last poll
    failed: dict[int, tuple] = dataclasses.field(default_factory=dict)  # (fingerprint, time)


def fingerprint(path: str) -> tuple:
    """(relative path, size, mtime) of every file below `path`: it changes while a copy runs."""
    items = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                st = os.stat(full)
                items.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns))
            except OSError:  # removed while walking: the directory is in flux
                items.append((os.path.relpath(full, path), -1, -1))
    return tuple(sorted(items))


def select_versions(policy, on_disk) -> set[int]:
    """The versions a ServableVersionPolicy asks for among those on disk."""
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(on_disk)
    if choice == "specific":
        return set(on_disk) & set(policy.specific.versions)
    # 'latest' or unset: TF Serving's default is the single latest version.
    return set(sorted(on_disk)[-(policy.latest.num_versions or 1):])


class ModelManager:
    """Loads, serves and unloads versions by a ModelServerConfig; `config_path` (where `config`
    came from) is re-read every `config_poll_wait_seconds`, base paths scanned every
    `file_system_poll_wait_seconds` (0: never / only at start). `on_event(model, version,
    state, message)` is told of each AVAILABLE, END and FAILED."""

    def __init__(self, config, *, config_path: str | None = None, file_system_poll_wait_seconds: float = 1.0,
                 config_poll_wait_seconds: float = 0.0, limits: Limits = Limits(),
                 on_event: Callable[[str, int, str, str], None] | None = None,
                 retry_interval_seconds: float = 60.0, warmup: bool = True):
        self._lock, self._poll_lock = threading.RLock(), threading.Lock()  # the latter: one scan at a time
        self._models: dict[str, _Model] = {}
        self._config_path, self._file_config, self._file_error = config_path, config, None
        self._waits = ((file_system_poll_wait_seconds, self.poll),
                       (config_poll_wait_seconds if config_path else 0, self.reread_config_file))
        self._limits, self._retry_interval, self._warmup = limits, retry_interval_seconds, warmup
        self._on_event = on_event or (lambda *args: None)
        self._stop, self._threads = threading.Event(), []
        self._apply_config(config)

    def start(self) -> None:
        """Load what the config asks for now, then keep polling in the background."""
        self.poll(initial=True)
        self._threads = [threading.Thread(target=self._every, args=(wait, job), name="model-manager", daemon=True)
                         for wait, job in self._waits if wait > 0]
        for thread in self._threads:
            thread.start()

    def _every(self, wait: float, job) -> None:
        while not self._stop.wait(wait):
            try:
                job()
            except Exception:
                log.exception("model manager poll failed; will try again")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        with self._lock:
            self._models.clear()  # releases every loaded version

    def _apply_config(self, config) -> None:
        """Add, change or drop models to match `config`."""
        with self._lock:
            wanted = {m.name: m for m in config.model_config_list.config}
            for name in [n for n in self._models if n not in wanted]:
                for version in self._models.pop(name).served:
                    self._on_event(name, version, END, "model removed from config")
            for name, model_config in wanted.items():
                # As TF Serving: a relative base path is one from the working directory.
                base, current = os.path.abspath(model_config.base_path), self._models.get(name)
                if current is not None and current.base_path == base:
                    current.config = model_config
                    continue
                for version in current.served if current else ():
                    self._on_event(name, version, END, "base_path changed")
                self._models[name] = _Model(config=model_config, base_path=base)

    def reload_config(self, config) -> None:
        """Apply a new (checked) ModelServerConfig now and load what it asks for."""
        with self._poll_lock:
            self._apply_config(config)
        self.poll(initial=True)

    def reread_config_file(self) -> None:
        """Apply the config file if it changed and is valid; otherwise keep the running config."""
        try:
            config, self._file_error = read_model_config(self._config_path), None
        except ConfigError as e:
            if str(e) != self._file_error:  # reported once, not every poll
                log.error("%s; keeping the current config", e)
            self._file_error = str(e)
            return
        if config != self._file_config:
            log.info("model config %s changed; applying it", self._config_path)
            self._file_config = config
            self.reload_config(config)

    def poll(self, *, initial: bool = False) -> None:
        """Scan the base paths; load (new ones: once two scans agree, unless `initial`) and unload."""
        with self._poll_lock:
            with self._lock:
                models = list(self._models.items())
            for name, model in models:
                self._sync_model(name, model, initial)

    def _sync_model(self, name: str, model: _Model, initial: bool) -> None:
        on_disk = servable.list_versions(model.base_path)
        wanted = select_versions(model.config.model_version_policy, on_disk)
        for version in sorted(wanted - set(model.served), reverse=True):
            fp = fingerprint(on_disk[version])
            if not initial and model.seen.get(version) != fp:
                model.seen[version] = fp  # load next poll if nothing changes meanwhile
                continue
            failed = model.failed.get(version)
            if not failed or failed[0] != fp or time.monotonic() - failed[1] >= self._retry_interval:
                self._load(model, name, version, on_disk[version], fp)
        with self._lock:
            # Availability first, as TF Serving's default transition policy: a version
            # that left the policy - or the disk: its graph and weights are in memory -
            # keeps answering until every wanted version is up.
            if wanted <= set(model.served):
                for version in set(model.served) - wanted:
                    del model.served[version]
                    model.status[version] = VersionStatus(version, END)
                    self._on_event(name, version, END, "no longer selected by the version policy"
                                   if version in on_disk else "directory removed")
            model.seen = {v: fp for v, fp in model.seen.items() if v in on_disk and v not in model.served}

    def _load(self, model: _Model, name: str, version: int, path: str, fp: tuple) -> None:
        with self._lock:
            model.status[version] = VersionStatus(version, LOADING)
        try:
            served = servable.load_version(path, name=name, version=version, limits=self._limits,
                                           warmup=self._warmup)
        except LmkError as e:
            log.error("model %r version %d failed to load: %s", name, version, e)
            with self._lock:
                model.failed[version] = (fp, time.monotonic())
                model.status[version] = VersionStatus(version, END, str(e))
            self._on_event(name, version, "FAILED", str(e))
            return
        with self._lock:
            if self._models.get(name) is not model:  # config changed while loading
                return
            model.served[version] = served
            model.failed.pop(version, None)
            model.status[version] = VersionStatus(version, AVAILABLE)
        self._on_event(name, version, AVAILABLE, path)

    def _model(self, name: str) -> _Model:
        if name not in self._models:
            raise NotFound(f"model {name!r} is not served (served models: "
                           f"{', '.join(map(repr, sorted(self._models))) or 'none'})")
        return self._models[name]

    def get(self, name: str, version: int | None = None, label: str | None = None) -> servable.ServedVersion:
        """The loaded version to answer a request (latest AVAILABLE when unspecified)."""
        with self._lock:
            model = self._model(name)
            labels = model.config.version_labels
            if label and label not in labels:
                raise NotFound(f"model {name!r} has no version label {label!r} "
                               f"(labels: {', '.join(map(repr, sorted(labels))) or 'none'})")
            version = labels[label] if label else version
            if not model.served:
                raise NotFound(f"model {name!r} has no version AVAILABLE")
            if version and version not in model.served:
                raise NotFound(f"model {name!r} version {version}{f' (label {label!r})' if label else ''} is not "
                               f"AVAILABLE (available versions: {', '.join(map(str, sorted(model.served)))})")
            return model.served[version or max(model.served)]

    def status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """Status of each version the manager has seen, newest first."""
        with self._lock:
            model = self._model(name)
            if version and version not in model.status:
                raise NotFound(f"model {name!r} has no version {version}")
            if not model.status:
                raise NotFound(f"model {name!r} has no versions (nothing in {model.base_path})")
            return [model.status[v] for v in ([version] if version else sorted(model.status, reverse=True))]
