"""lmk-batch's Beam pipeline: image paths -> RunInference -> JSON Lines, plus an errors output.

    paths (a glob's matches, or a manifest's lines)
      | RunInference(LandmarkModelHandler, reading each file first)
      -> <output>-SSSSS-of-NNNNN.jsonl         one lmk-predict record per image
      -> <output>-errors-SSSSS-of-NNNNN.jsonl  {"file", "error"} per file that
                                               could not be read or predicted

A bad file lands in the errors output and the job goes on, so one damaged
file among 100,000 costs one line, not the job. The runner and its settings
are Beam's own pipeline options (DirectRunner unless --runner says otherwise).
"""

from __future__ import annotations

import ast
import dataclasses
import glob
import json
import os
import re

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from lmk_tf.batch.handler import ImageFileReader, LandmarkModelHandler
from lmk_tf.errors import LmkError

NAMESPACE = "lmk_batch"
SUFFIX = ".jsonl"


@dataclasses.dataclass
class BatchSummary:
    """What a finished job did (from Beam's metrics, where the runner reports them)."""

    predicted: int
    failed: int
    outputs: list[str]
    errors: list[str]


def error_message(exc_type: type, exc_repr: str) -> str:
    """One line from what Beam's dead-letter output keeps of an exception: its type and repr.

    The package's own errors already name the file and the problem and are
    kept as they are; anything else gets its type in front.
    """
    text = exc_repr
    match = re.fullmatch(r"\w+\((.*)\)", exc_repr, re.S)
    if match:
        try:
            value = ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, str):
            text = value
    text = " ".join(text.split())
    return text if issubclass(exc_type, LmkError) else f"{exc_type.__name__}: {text}"


def _unreadable(failure):
    path, (exc_type, exc_repr, _) = failure
    beam.metrics.Metrics.counter(NAMESPACE, "failed").inc()
    return {"file": path, "error": error_message(exc_type, exc_repr)}


def _unpredictable(failure):
    batch, (exc_type, exc_repr, _) = failure
    for path, _image in batch:
        beam.metrics.Metrics.counter(NAMESPACE, "failed").inc()
        yield {"file": path, "error": error_message(exc_type, exc_repr)}


def _predicted(record):
    beam.metrics.Metrics.counter(NAMESPACE, "predicted").inc()
    return json.dumps(record)


def add_to_pipeline(paths, *, model_dir: str, output: str, spacing=None):
    """Appends prediction and both outputs to a PCollection of paths."""
    handler = LandmarkModelHandler(model_dir).with_preprocess_fn(ImageFileReader(spacing))
    records, failed = paths | "Predict" >> RunInference(handler).with_exception_handling()
    (records
     | "RecordToJson" >> beam.Map(_predicted)
     | "WriteRecords" >> beam.io.WriteToText(output, file_name_suffix=SUFFIX))
    unreadable = failed.failed_preprocessing[0] | "Unreadable" >> beam.Map(_unreadable)
    unpredictable = failed.failed_inferences | "Unpredictable" >> beam.FlatMap(_unpredictable)
    ((unreadable, unpredictable)
     | "AllErrors" >> beam.Flatten()
     | "ErrorToJson" >> beam.Map(json.dumps)
     | "WriteErrors" >> beam.io.WriteToText(output + "-errors", file_name_suffix=SUFFIX))


def run_batch(paths: list[str], *, model_dir: str, output: str, spacing=None, beam_args=()) -> BatchSummary:
    """Runs the job to the end with Beam's options `beam_args`; returns what it did."""
    if os.path.dirname(output) and "://" not in output:  # a bucket's prefix needs no folder
        os.makedirs(os.path.dirname(output), exist_ok=True)
    options = PipelineOptions(list(beam_args))
    pipeline = beam.Pipeline(options=options)
    add_to_pipeline(pipeline | "Paths" >> beam.Create(paths), model_dir=model_dir, output=output,
                    spacing=spacing)
    result = pipeline.run()
    result.wait_until_finish()
    counters = {"predicted": 0, "failed": 0}
    for counter in result.metrics().query()["counters"]:  # one per step that counts
        if counter.key.metric.namespace == NAMESPACE and counter.key.metric.name in counters:
            counters[counter.key.metric.name] += counter.committed
    return BatchSummary(
        predicted=counters["predicted"], failed=counters["failed"],
        outputs=written(output), errors=written(output + "-errors"),
    )


def written(prefix: str) -> list[str]:
    """The shards WriteToText wrote under `prefix` (its -SSSSS-of-NNNNN names)."""
    return sorted(glob.glob(f"{glob.escape(prefix)}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9]*{SUFFIX}"))
