"""tf.distribute strategies for `lmk-train`, and what multi-worker training needs besides.

With `--strategy=multi_worker` every worker runs the same command with its own
TF_CONFIG (docs/distributed.md). The chief (task 0 of the "worker" list, or
the "chief" task) writes the stage directory; the other workers write the same
files to a scratch directory of their own, `<stage>/.<type>-<index>/`, as
TensorFlow's multi-worker Keras guide does: every worker takes part in saving
(reading a distributed variable can take them all), one copy is kept.
Every worker resumes from the chief's checkpoint, so after a restart they all
start at the same step.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import shutil

import keras
import tensorflow as tf

from lmk_tf.errors import ConfigError

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str):
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        return _multi_worker_strategy()
    raise ConfigError(f"strategy must be one of {STRATEGIES}, got {name!r}")


@functools.cache
def _multi_worker_strategy():
    # One per process: it starts this worker's gRPC server, which cannot be
    # started twice (a recipe that trains both stages in one process reuses it).
    return tf.distribute.MultiWorkerMirroredStrategy()


def check_tf_config(text: str | None) -> dict:
    """TF_CONFIG parsed, or a ConfigError naming what is wrong with it."""
    if not text:
        raise ConfigError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                          '(e.g. {"cluster": {"worker": ["host0:2222", "host1:2222"]}, '
                          '"task": {"type": "worker", "index": 0}})')
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"TF_CONFIG must be a JSON object, got {text[:80]!r}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ConfigError(f"TF_CONFIG needs a 'cluster' and a 'task' object, got keys {sorted(config)}")
    members = cluster.get(task.get("type"))
    index = task.get("index")
    if not isinstance(members, list) or not isinstance(index, int) or not 0 <= index < len(members):
        raise ConfigError(f"TF_CONFIG task {task} is not one of the cluster's tasks {cluster}")
    return config


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """Where this process stands in the cluster.

    Attributes:
      count: worker processes taking part (1 without multi-worker training).
      name: 'worker-1', 'chief-0', ... (TF_CONFIG's task), '' alone.
      is_chief: this worker writes checkpoints, logs and the model.
    """

    count: int = 1
    name: str = ""
    is_chief: bool = True

    def scratch_dir(self, stage_dir: str) -> str:
        """Where a non-chief worker writes what the chief writes to `stage_dir`."""
        return os.path.join(stage_dir, f".{self.name}")


def worker_role(strategy) -> WorkerRole:
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return WorkerRole()
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec()
    return WorkerRole(
        count=sum(spec.num_tasks(job) for job in ("chief", "worker") if job in spec.jobs),
        name=f"{resolver.task_type}-{resolver.task_id}",
        is_chief=strategy.extended.should_checkpoint,
    )


def check_split(files: list[str], batch_size: int, replicas: int, role: WorkerRole, data_dir: str, stage: str):
    """Each worker reads whole shards (tf.data FILE sharding) and gets part of each batch."""
    if len(files) < role.count:
        raise ConfigError(
            f"{data_dir}: {len(files)} train-{stage} shards for {role.count} workers; each worker "
            f"reads whole shards, so rerun lmk-prepare with --num_shards={role.count} (or a multiple)"
        )
    if batch_size % replicas:
        raise ConfigError(f"batch_size {batch_size} is the global batch; it must be a multiple of the "
                          f"{replicas} replicas it is split across")


def per_worker_dataset(strategy, make_dataset, files: list[str], batch_size: int):
    """Each worker's own shards in batches of its share of `batch_size` (the global batch).

    `make_dataset(files, batch_size)` builds one worker's pipeline. Sharding by
    file, before any reading, keeps the pipeline as it is (its element counter
    would stop tf.data's automatic FILE sharding) and reads each image once.
    """
    return strategy.distribute_datasets_from_function(
        functools.partial(worker_dataset, make_dataset=make_dataset, files=files, batch_size=batch_size)
    )


def worker_dataset(context: tf.distribute.InputContext, *, make_dataset, files: list[str], batch_size: int):
    """The pipeline of the worker `context` names: every n-th shard, 1/n of each batch."""
    mine = files[context.input_pipeline_id::context.num_input_pipelines]
    return make_dataset(mine, context.get_per_replica_batch_size(batch_size))


def gather(strategy, values: list[int]) -> list[list[int]]:
    """Every worker's `values`, in task order, on every worker (a collective: a barrier too)."""
    local = tf.constant([values], tf.int64)

    @tf.function  # strategy.run outside a graph is slow (and says so)
    def all_workers():
        return strategy.gather(strategy.run(lambda: tf.identity(local)), axis=0)

    return all_workers().numpy().tolist()


class AverageMovingStatistics(keras.callbacks.Callback):
    """Averages the moving statistics of BatchNormalization over the workers after each epoch.

    Keras 3 keeps them per worker (its non-trainable variables have no
    aggregation), each from that worker's shards only; averaging them makes the
    checkpoints and the model the same on every worker, and from all the data.
    Put it before the callbacks that save.
    """

    def __init__(self, strategy):
        super().__init__()
        self.strategy = strategy

    def on_train_begin(self, logs=None):
        variables = [v for v in self.model.non_trainable_variables if "float" in str(v.dtype)]

        @tf.function  # strategy.run outside a graph is slow (and says so)
        def average():
            local = self.strategy.run(lambda: tf.concat([tf.reshape(v.value, [-1]) for v in variables], 0))
            mean = self.strategy.reduce("MEAN", local, axis=None)
            for v, part in zip(variables, tf.split(mean, [math.prod(v.shape) for v in variables])):
                v.assign(tf.reshape(part, v.shape))

        self._average = average if variables else None

    def on_epoch_end(self, epoch, logs=None):
        if self._average is not None:
            self._average()


BACKUP_FILES = ("latest.weights.h5", "training_metadata.json")


def backup_epoch(backup_dir: str) -> int:
    """The epoch a BackupAndRestore checkpoint in `backup_dir` resumes at (-1: none)."""
    try:
        with open(os.path.join(backup_dir, BACKUP_FILES[1]), encoding="utf-8") as f:
            return int(json.load(f)["epoch"])
    except FileNotFoundError:
        return -1


def agree_on_resume(strategy, role: WorkerRole, chief_backup: str, own_backup: str):
    """Makes every worker resume from the chief's checkpoint, or fails naming the mismatch.

    Call after the chief has checked (and perhaps repaired) its backup; the first
    collective waits for it. A non-chief worker then copies the chief's newest
    checkpoint into its own backup directory; a worker that cannot see it (the
    model directory is not shared) would start at another step than the chief,
    and the collectives of the two would never meet, so that is an error here.
    """
    gather(strategy, [0])
    if not role.is_chief:
        shutil.rmtree(own_backup, ignore_errors=True)
        os.makedirs(own_backup, exist_ok=True)
        if backup_epoch(chief_backup) >= 0:
            for name in BACKUP_FILES:
                shutil.copyfile(os.path.join(chief_backup, name), os.path.join(own_backup, name))
    return check_same_epoch([row[0] for row in gather(strategy, [backup_epoch(own_backup)])], chief_backup)


def check_same_epoch(epochs: list[int], chief_backup: str) -> int:
    """The epoch every worker resumes at; a ConfigError when they differ."""
    if len(set(epochs)) > 1:
        raise ConfigError(
            f"workers would resume from different epochs {epochs} (-1: none; the chief's "
            f"checkpoint is {chief_backup}); every worker must see the chief's model_dir, "
            "so put it on storage they all share"
        )
    return epochs[0]


def fit(model, strategy, dataset, **kwargs):
    """`model.fit` that also works under MultiWorkerMirroredStrategy.

    Keras 3.15 (and its main branch) fails there twice, with any model
    (keras-team/keras#20585, open):
    - it builds a model made under a strategy by all-reducing the first
      distributed batch, a nest the collective reduce cannot take ("Attempt to
      convert a value (PerReplica...) to a Tensor"). Forgetting the strategy
      the model captured and calling fit inside its scope gives Keras the same
      strategy from the scope, and the model is built in the first traced step;
    - it averages each step's logs across workers with `reduce(MEAN, axis=0)`,
      which a scalar has no axis for ("Invalid reduction dimension 0"). The
      step's logs become shape [1], whose mean over axis 0 is the scalar.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return model.fit(dataset, **kwargs)
    model._distribute_strategy = None  # the first failure above
    keras_step = model.train_step

    def train_step(data):
        return {name: tf.reshape(value, [1]) for name, value in keras_step(data).items()}

    model.train_step = train_step
    try:
        with strategy.scope():
            return model.fit(dataset, **kwargs)
    finally:
        del model.train_step
