"""Which model versions are loaded, kept in step with models.config and the disk.

Behaves like TF Serving's file-system source + version policy:

* each model's base_path is listed for integer-named version directories that
  hold saved_model.pb; the version policy (latest N - default 1 -, all, or
  specific versions) picks which of them to serve;
* availability is preserved: a version that is no longer wanted (or whose
  directory was removed) is unloaded only once every wanted version is
  AVAILABLE, so swapping or removing versions never leaves a gap;
* the disk is polled every `file_system_poll_wait_seconds` (0: only at start):
  new versions are loaded without a restart and versions that left the policy
  or the disk are unloaded;
* a version found by polling is loaded only once its files have stayed the same
  for one poll, so a directory still being copied is never served; a load that
  fails is logged and retried when the files change (or after
  `retry_interval_seconds`), and the versions already serving keep serving;
* the config file is re-read every `config_poll_wait_seconds` if > 0;
* assets.extra/tf_serving_warmup_requests is replayed before a version becomes
  AVAILABLE.

All public methods are thread-safe. Loading happens outside the lock, so
requests keep being answered while a new version loads.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable

from lmk_tf.errors import ConfigError, LmkError
from lmk_tf.serving import model_config as mc
from lmk_tf.serving import servable
from lmk_tf.serving.status import NotFound
from lmk_tf.serving.validation import Limits

log = logging.getLogger(__name__)

# States as GetModelStatus names them (ModelVersionStatus.State).
LOADING, AVAILABLE, END = "LOADING", "AVAILABLE", "END"


@dataclasses.dataclass
class VersionStatus:
    """What GetModelStatus reports for one version."""

    version: int
    state: str
    error: str = ""  # why the last load failed; '' = OK


@dataclasses.dataclass
class _Model:
    config: object  # ModelConfig proto
    base_path: str
    status: dict[int, VersionStatus] = dataclasses.field(default_factory=dict)
    served: dict[int, servable.ServedVersion] = dataclasses.field(default_factory=dict)
    # Fingerprints of versions seen at the previous poll but not loaded yet.
    seen: dict[int, tuple] = dataclasses.field(default_factory=dict)
    # version -> (fingerprint, time) of the last failed load.
    failed: dict[int, tuple] = dataclasses.field(default_factory=dict)


def fingerprint(path: str) -> tuple:
    """(relative path, size, mtime) of every file below `path`: changes while copying."""
    items = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                st = os.stat(full)
            except OSError:  # removed while walking: the directory is in flux
                items.append((os.path.relpath(full, path), -1, -1))
                continue
            items.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns))
    return tuple(sorted(items))


def select_versions(policy, on_disk) -> set[int]:
    """The versions a ServableVersionPolicy asks for among those on disk."""
    available = sorted(on_disk)
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(available)
    if choice == "specific":
        return set(available) & set(policy.specific.versions)
    # 'latest' or unset: TF Serving's default is the single latest version.
    n = policy.latest.num_versions if choice == "latest" and policy.latest.num_versions else 1
    return set(available[-n:])


class ModelManager:
    """Loads, serves and unloads model versions according to a ModelServerConfig.

    Args:
      config: the ModelServerConfig to start with.
      config_path: the models.config file it came from, re-read every
        `config_poll_wait_seconds` when that is > 0.
      file_system_poll_wait_seconds: seconds between scans of the base paths;
        0 scans once at start.
      config_poll_wait_seconds: seconds between re-reads of `config_path`; 0 never.
      limits: request size limits given to every loaded version.
      on_event: called as on_event(model, version, state, message) whenever a
        version becomes AVAILABLE, ends, or fails to load.
      retry_interval_seconds: a failed version is retried after this long even
        if its files did not change.
      warmup: replay warm-up requests on load.
    """

    def __init__(
        self,
        config,
        *,
        config_path: str | None = None,
        file_system_poll_wait_seconds: float = 1.0,
        config_poll_wait_seconds: float = 0.0,
        limits: Limits = Limits(),
        on_event: Callable[[str, int, str, str], None] | None = None,
        retry_interval_seconds: float = 60.0,
        warmup: bool = True,
    ):
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()  # one scan/reload at a time
        self._models: dict[str, _Model] = {}
        self._config = None
        self._config_path = config_path
        self._config_text = None
        self._fs_wait = file_system_poll_wait_seconds
        self._config_wait = config_poll_wait_seconds
        self._limits = limits
        self._on_event = on_event or (lambda *args: None)
        self._retry_interval = retry_interval_seconds
        self._warmup = warmup
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if config_path:
            with open(config_path, encoding="utf-8") as f:
                self._config_text = f.read()
        self._apply_config(config)

    # ----- lifecycle -----

    def start(self) -> None:
        """Load what the config asks for now, then keep polling in the background."""
        self.poll(initial=True)
        if self._fs_wait > 0 or (self._config_path and self._config_wait > 0):
            self._thread = threading.Thread(target=self._run, name="model-manager", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            for model in self._models.values():
                model.served.clear()

    def _run(self) -> None:
        now = time.monotonic()
        next_fs = now + self._fs_wait if self._fs_wait > 0 else float("inf")
        next_cfg = (
            now + self._config_wait if self._config_path and self._config_wait > 0 else float("inf")
        )
        while not self._stop.is_set():
            wait = max(0.0, min(next_fs, next_cfg) - time.monotonic())
            if self._stop.wait(wait):
                return
            now = time.monotonic()
            try:
                if now >= next_cfg:
                    next_cfg = now + self._config_wait
                    self.reread_config_file()
                if now >= next_fs:
                    next_fs = now + self._fs_wait
                    self.poll()
            except Exception:
                log.exception("model manager poll failed; will try again")

    # ----- config -----

    def _apply_config(self, config) -> list[str]:
        """Add, change or drop models to match `config`; returns models dropped."""
        with self._lock:
            wanted = {m.name: m for m in config.model_config_list.config}
            dropped = [name for name in self._models if name not in wanted]
            for name in dropped:
                model = self._models.pop(name)
                for version in list(model.served):
                    self._on_event(name, version, END, "model removed from config")
            for name, model_config in wanted.items():
                base = mc.resolve_base_path(model_config.base_path)
                current = self._models.get(name)
                if current is None or current.base_path != base:
                    if current is not None:
                        for version in list(current.served):
                            self._on_event(name, version, END, "base_path changed")
                    self._models[name] = _Model(config=model_config, base_path=base)
                else:
                    current.config = model_config
            self._config = config
            return dropped

    def reload_config(self, config) -> None:
        """Apply a new ModelServerConfig now and load what it asks for."""
        mc.check_model_config(config, source="reloaded config")
        with self._poll_lock:
            self._apply_config(config)
        self.poll(initial=True)

    def reread_config_file(self) -> None:
        """Re-read the config file; apply it if it changed and parses (else keep the old)."""
        try:
            with open(self._config_path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            log.error("cannot re-read %s: %s; keeping the current config", self._config_path, e)
            return
        if text == self._config_text:
            return
        try:
            config = mc.parse_model_config(text, source=self._config_path)
        except ConfigError as e:
            log.error("%s; keeping the current config", e)
            self._config_text = text  # report a broken file once, not every poll
            return
        self._config_text = text
        log.info("model config %s changed; applying it", self._config_path)
        self.reload_config(config)

    @property
    def config(self):
        with self._lock:
            return self._config

    # ----- polling -----

    def poll(self, *, initial: bool = False) -> None:
        """Scan every base path once and load/unload versions to match the policy.

        Args:
          initial: load versions found on this scan at once; otherwise a new
            version must look the same on two consecutive scans first.
        """
        with self._poll_lock:
            with self._lock:
                names = list(self._models)
            for name in names:
                self._sync_model(name, initial)

    def _sync_model(self, name: str, initial: bool) -> None:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                return
            policy = model.config.model_version_policy
        on_disk = servable.list_versions(model.base_path)
        wanted = select_versions(policy, on_disk)

        for version in sorted(wanted, reverse=True):
            if version in model.served:
                continue
            path = on_disk[version]
            fp = fingerprint(path)
            if not initial and model.seen.get(version) != fp:
                model.seen[version] = fp  # load next poll if nothing changes meanwhile
                continue
            failed = model.failed.get(version)
            if failed and failed[0] == fp and time.monotonic() - failed[1] < self._retry_interval:
                continue
            self._load(model, name, version, path, fp)

        with self._lock:
            all_wanted_up = all(v in model.served for v in wanted)
            for version in list(model.served):
                gone = version not in on_disk
                # Availability first, as TF Serving's default transition policy: a
                # version that left the policy - or the disk: its graph and weights
                # are in memory - keeps answering until every wanted version is up.
                if (gone or version not in wanted) and all_wanted_up:
                    del model.served[version]
                    model.status[version] = VersionStatus(version, END)
                    reason = "directory removed" if gone else "no longer selected by the version policy"
                    self._on_event(name, version, END, reason)
            for version in list(model.seen):
                if version not in on_disk or version in model.served:
                    del model.seen[version]

    def _load(self, model: _Model, name: str, version: int, path: str, fp: tuple) -> None:
        with self._lock:
            model.status[version] = VersionStatus(version, LOADING)
        try:
            served = servable.load_version(
                path, name=name, version=version, limits=self._limits, warmup=self._warmup
            )
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
            model.seen.pop(version, None)
            model.status[version] = VersionStatus(version, AVAILABLE)
        self._on_event(name, version, AVAILABLE, path)

    # ----- queries -----

    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def _model(self, name: str) -> _Model:
        model = self._models.get(name)
        if model is None:
            served = ", ".join(repr(n) for n in sorted(self._models)) or "none"
            raise NotFound(f"model {name!r} is not served (served models: {served})")
        return model

    def get(
        self, name: str, version: int | None = None, label: str | None = None
    ) -> servable.ServedVersion:
        """The loaded version to answer a request (latest AVAILABLE when unspecified)."""
        with self._lock:
            model = self._model(name)
            if label:
                labels = dict(model.config.version_labels)
                if label not in labels:
                    known = ", ".join(repr(k) for k in sorted(labels)) or "none"
                    raise NotFound(
                        f"model {name!r} has no version label {label!r} (labels: {known})"
                    )
                version = labels[label]
            if not model.served:
                raise NotFound(f"model {name!r} has no version AVAILABLE")
            if version is None or version == 0:
                return model.served[max(model.served)]
            if version not in model.served:
                available = ", ".join(str(v) for v in sorted(model.served))
                via = f" (label {label!r})" if label else ""
                raise NotFound(
                    f"model {name!r} version {version}{via} is not AVAILABLE "
                    f"(available versions: {available})"
                )
            return model.served[version]

    def status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """Status of each version the manager has seen, newest first."""
        with self._lock:
            model = self._model(name)
            if version:
                if version not in model.status:
                    raise NotFound(f"model {name!r} has no version {version}")
                return [dataclasses.replace(model.status[version])]
            if not model.status:
                raise NotFound(f"model {name!r} has no versions (nothing in {model.base_path})")
            return [dataclasses.replace(model.status[v]) for v in sorted(model.status, reverse=True)]

    def labels(self, name: str) -> dict[str, int]:
        with self._lock:
            return dict(self._model(name).config.version_labels)
