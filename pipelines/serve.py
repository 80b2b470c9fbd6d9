"""lmk-serve: the embedded TF-Serving-compatible server (gRPC, and REST).

Flags that tensorflow_model_server also has mean the same here, so a command
line or models.config moves between the two unchanged:

  lmk-serve --model_name=demo --model_base_path=$PWD/saved_models/demo
  lmk-serve --model_config_file=serving/models.config --port=8500 --rest_api_port=8501

It prints one line when each model version becomes AVAILABLE and stops cleanly
on SIGTERM or Ctrl-C. Prometheus metrics (TF Serving's request_count and
request_latency, and per version and signature) are at
http://HOST:REST_PORT/monitoring/prometheus/metrics.
"""

import signal
import sys
import threading

from absl import flags

from lmk_tf import cli
from lmk_tf.errors import ConfigError
from lmk_tf.export.contract import MAX_REQUEST_MB

FLAGS = flags.FLAGS

flags.DEFINE_integer("port", 8500, "gRPC port (0 picks a free one).", lower_bound=0, upper_bound=65535)
flags.DEFINE_integer("rest_api_port", 8501, "REST port; 0 turns the REST API off.",
                     lower_bound=0, upper_bound=65535)
flags.DEFINE_string("host", "127.0.0.1",
                    "Interface to bind. The default serves this machine only; another "
                    "interface (0.0.0.0 = all; TF Serving binds all) must be asked for here, "
                    "and should come with --ssl_cert_file/--ssl_key_file.")
flags.DEFINE_string("model_config_file", None, "A models.config (ModelServerConfig text proto).")
flags.DEFINE_integer("model_config_file_poll_wait_seconds", 0,
                     "Re-read --model_config_file this often; 0 never.", lower_bound=0)
flags.DEFINE_float("file_system_poll_wait_seconds", 1.0,
                   "Scan base paths for new/removed versions this often; 0 only at start.",
                   lower_bound=0)
flags.DEFINE_string("model_name", "default", "Model name when serving one --model_base_path.")
flags.DEFINE_string("model_base_path", None, "Directory with integer version subdirectories.")
flags.DEFINE_integer("grpc_max_threads", 16, "Threads answering gRPC requests concurrently.",
                     lower_bound=1)
flags.DEFINE_integer("max_request_mb", MAX_REQUEST_MB,
                     "Largest gRPC message (request or response) and REST request body, "
                     "MiB; bigger ones are refused.", lower_bound=1)
flags.DEFINE_integer("max_image_elements", 64 * 2**20,
                     "Most pixels/voxels in one input tensor; larger requests are refused "
                     "(over gRPC from the tensor's shape, before its pixels are decoded).",
                     lower_bound=1)
flags.DEFINE_integer("max_concurrent_requests", 64,
                     "Requests running or queued at once; more get RESOURCE_EXHAUSTED (gRPC) or "
                     "503 (REST) instead of piling up in memory. 0 = no limit.", lower_bound=0)
flags.DEFINE_string("ssl_cert_file", None, "PEM certificate (chain): serve gRPC and REST over TLS.")
flags.DEFINE_string("ssl_key_file", None, "PEM private key of --ssl_cert_file.")
flags.DEFINE_list("allowed_model_roots", None,
                  "Directories a ReloadConfigRequest may name base paths in; default the "
                  "parent directories of the configured base paths.")


def main(argv):
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    cli.import_tensorflow_quietly()
    from lmk_tf.serving.server import ServerOptions, run_server

    options = ServerOptions(
        host=FLAGS.host,
        port=FLAGS.port,
        rest_api_port=FLAGS.rest_api_port,
        model_config_file=FLAGS.model_config_file,
        model_config_file_poll_wait_seconds=FLAGS.model_config_file_poll_wait_seconds,
        file_system_poll_wait_seconds=FLAGS.file_system_poll_wait_seconds,
        model_name=FLAGS.model_name,
        model_base_path=FLAGS.model_base_path,
        grpc_max_threads=FLAGS.grpc_max_threads,
        max_request_mb=FLAGS.max_request_mb,
        max_image_elements=FLAGS.max_image_elements,
        max_concurrent_requests=FLAGS.max_concurrent_requests,
        ssl_cert_file=FLAGS.ssl_cert_file,
        ssl_key_file=FLAGS.ssl_key_file,
        allowed_model_roots=(tuple(FLAGS.allowed_model_roots)
                             if FLAGS.allowed_model_roots is not None else None),
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_server(options, stop, out=sys.stdout)


def run():
    cli.run_app(main)


if __name__ == "__main__":
    run()
