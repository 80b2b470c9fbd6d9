"""lmk-client: landmarks for image files from a TF Serving or lmk-serve server.

  lmk-client --server=localhost:8500 --model=isbi2015_ceph image.dcm
  lmk-client --server=localhost:8500 --model=demo --format=csv --spacing=0.1,0.1 a.png b.png
  lmk-client --model=isbi2015_ceph --review_mm=3 --spacing=0.1 image.jpg   # mark doubtful landmarks
  lmk-client --server=localhost:8500 --model=ct --format=mrk.json --output=answers/ case1.nii.gz

Files are read here (DICOM, NIfTI, MetaImage, PNG/JPEG/BMP with --spacing); only
the pixels and spacing travel. With --send=encoded (the default) a JPEG or grey
PNG goes as the file itself and other 2D pixel data as a lossless PNG, decoded by
the model's serving_encoded signature; volumes, fractional or negative values and
models without that signature get a float32 tensor, as --send=tensor always does.
World coordinates use the file's origin and direction; --format=mrk.json or fcsv
writes one 3D Slicer point list per image (as lmk-predict does).

  lmk-client --server=dns:///lmk-serving-grpc:8500 --lb_policy=round_robin ...  # every pod
"""

import sys

from absl import flags

from lmk_tf import cli
from lmk_tf.errors import ConfigError
from lmk_tf.export.contract import MAX_REQUEST_MB
from lmk_tf.io import answers
from pipelines import review

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(review)

flags.DEFINE_string("server", "localhost:8500", "gRPC address HOST:PORT of the server.")
flags.DEFINE_string("model", None, "Served model name. Required.")
flags.DEFINE_integer("version", None, "Model version; default the latest served.", lower_bound=1)
flags.DEFINE_enum("format", "json", list(answers.FORMATS), "JSON, CSV with one row per image and "
                  "landmark, or a 3D Slicer markups file per image (mrk.json, fcsv; needs --output).")
flags.DEFINE_string("output", None, answers.OUTPUT_HELP)
flags.DEFINE_enum("coordinate_system", "LPS", list(answers.COORDINATE_SYSTEMS),
                  "World axes of the Slicer files (Slicer reads both; json and csv are LPS).")
flags.DEFINE_list("spacing", None,
                  "mm per pixel/voxel: one number, or one per array axis (row,col; 3D: "
                  "slice,row,col). Overrides the files' own; needed for PNG/JPEG/BMP and "
                  "files that state none.")
flags.DEFINE_float("timeout", 30.0, "Seconds each gRPC call may take (its deadline).",
                   lower_bound=0.001)
flags.DEFINE_string("ssl_ca_file", None,
                    "PEM certificate(s) to trust: talk TLS to a server started with "
                    "--ssl_cert_file (its certificate, or the CA that signed it).")
flags.DEFINE_enum("send", "encoded", ["encoded", "tensor"],
                  "How pixels travel: 'encoded' as PNG/JPEG bytes (the file itself where it is "
                  "one) to serving_encoded where the model has it, else as a tensor; 'tensor' "
                  "always float32 to serving_default.")
flags.DEFINE_enum("lb_policy", None, ["pick_first", "round_robin"],
                  "gRPC load balancing over the addresses --server resolves to: round_robin "
                  "sends each call to the next one (a headless Service: --server=dns:///NAME:8500); "
                  "default gRPC's pick_first, one connection to one server.")
flags.DEFINE_integer("max_message_mb", MAX_REQUEST_MB,
                     "Largest message the channel sends or receives, MiB (as the server's "
                     "--max_request_mb).", lower_bound=1)


def main(argv):
    files = argv[1:]
    if not files:
        raise ConfigError("give at least one image file")
    if not FLAGS.model:
        raise ConfigError("--model is required")
    import os

    from lmk_tf.errors import RequestError
    from lmk_tf.io.model_input import encode_for_request, read_files_for_model

    answers.check_format(FLAGS.format, FLAGS.output, FLAGS.coordinate_system)
    if FLAGS.output:
        answers.output_paths(files, FLAGS.format, FLAGS.output)
    # All files are read (and refused) before gRPC is loaded or a request sent.
    images = read_files_for_model(files, FLAGS.spacing, prog=os.path.basename(sys.argv[0]) or "lmk-client")
    cli.import_tensorflow_quietly()
    from lmk_tf.serving.client import make_channel, make_stub, predict_image

    channel = make_channel(FLAGS.server, max_message_mb=FLAGS.max_message_mb,
                           ssl_ca_file=FLAGS.ssl_ca_file, lb_policy=FLAGS.lb_policy)
    stub = make_stub(channel)
    results = []
    try:
        for path, image in images:
            try:
                encoded = encode_for_request(path, image) if FLAGS.send == "encoded" else None
                result = predict_image(stub, FLAGS.model, image, version=FLAGS.version,
                                       timeout=FLAGS.timeout, encoded=encoded)
            except RequestError as e:
                raise RequestError(f"{path}: {e}") from None
            results.append({"file": path, **result})
    finally:
        channel.close()
    review.report(results)
    answers.write_answers(results, [image for _, image in images], FLAGS.format, FLAGS.output,
                          coordinate_system=FLAGS.coordinate_system)


def run():
    cli.run_app(main)


if __name__ == "__main__":
    run()
