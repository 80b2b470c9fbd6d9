"""lmk-predict: landmarks for image files from a SavedModel, in this process.

  lmk-predict --model=saved_models/demo image.mha
  lmk-predict --model=saved_models/isbi2015_ceph/5 --format=csv --overlay=out/ *.bmp --spacing=0.1,0.1
  lmk-predict --model=saved_models/isbi2015_ceph --review_mm=3 --spacing=0.1 image.jpg
  lmk-predict --model=saved_models/ct --format=mrk.json --output=answers/ case1.nii.gz case2/

Each landmark comes with `expected_error_mm` (the model's predicted radial
error) and `radius90_mm` (the truth lies within it 9 times in 10), drawn as a
circle on the overlay; --review_mm=X marks those whose expected error is above X.
--format=mrk.json or fcsv writes one 3D Slicer point list per image (world mm
through the image's own origin and direction; landmarks reported absent are
flagged "missing", as Slicer flags a point it must not place).

--model is a version directory or a base directory (its highest integer
version is used). The answer equals what lmk-serve or TF Serving give for the
same SavedModel: the same signature with the same request validation.
"""

import os
import sys

from absl import flags

from lmk_tf import cli
from lmk_tf.errors import ConfigError
from lmk_tf.io import answers
from lmk_tf.io.naming import image_stem
from pipelines import review

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(review)

flags.DEFINE_string("model", None, "SavedModel version directory, or a base directory "
                    "(its highest version). Required.")
flags.DEFINE_enum("format", "json", list(answers.FORMATS), "JSON, CSV with one row per image and "
                  "landmark, or a 3D Slicer markups file per image (mrk.json, fcsv; needs --output).")
flags.DEFINE_string("output", None, answers.OUTPUT_HELP)
flags.DEFINE_enum("coordinate_system", "LPS", list(answers.COORDINATE_SYSTEMS),
                  "World axes of the Slicer files (Slicer reads both; json and csv are LPS).")
flags.DEFINE_list("spacing", None,
                  "mm per pixel/voxel: one number, or one per array axis (row,col; 3D: "
                  "slice,row,col). Overrides the files' own; needed for PNG/JPEG/BMP and "
                  "files that state none.")
flags.DEFINE_string("overlay", None,
                    "Picture of the landmarks: a .png path (one image) or a directory "
                    "(one <name>.png per image).")


def overlay_path(overlay: str, image_path: str, count: int) -> str:
    """Where the overlay picture of `image_path` goes."""
    if overlay.lower().endswith(".png"):
        if count > 1:
            raise ConfigError(f"--overlay={overlay} is one file but {count} images were given; "
                              "give a directory")
        parent = os.path.dirname(overlay)
        if parent:
            os.makedirs(parent, exist_ok=True)
        return overlay
    os.makedirs(overlay, exist_ok=True)
    return os.path.join(overlay, f"{image_stem(image_path)}.png")


def main(argv):
    files = argv[1:]
    if not files:
        raise ConfigError("give at least one image file")
    if not FLAGS.model:
        raise ConfigError("--model is required")
    from lmk_tf.errors import RequestError
    from lmk_tf.serving.inputs import parse_spacing, read_files_for_model

    parse_spacing(FLAGS.spacing)  # a bad flag is named before the model is looked for
    answers.check_format(FLAGS.format, FLAGS.output, FLAGS.coordinate_system)
    if FLAGS.output:
        answers.output_paths(files, FLAGS.format, FLAGS.output)
    cli.import_tensorflow_quietly()
    from lmk_tf.serving.servable import resolve_model_dir

    model_dir, _ = resolve_model_dir(FLAGS.model)  # a wrong --model is named first
    # Every file is read (and refused) before the model loads, and every one is
    # predicted before anything is written, so a bad file among good ones
    # leaves no overlay and no output behind.
    images = read_files_for_model(files, FLAGS.spacing, prog=os.path.basename(sys.argv[0]) or "lmk-predict")
    from lmk_tf.serving.local import LocalModel

    model = LocalModel(model_dir)
    done = []
    for path, image in images:
        try:
            result = {"file": path, **model.predict_image(image)}
        except RequestError as e:
            raise RequestError(f"{path}: {e}") from None
        done.append((path, image, result))
    if FLAGS.overlay:
        from lmk_tf.overlay import draw_landmarks

        for path, image, result in done:
            draw_landmarks(
                image,
                [lm["index"] for lm in result["landmarks"]],
                overlay_path(FLAGS.overlay, path, len(files)),
                names=[lm["name"] for lm in result["landmarks"]],
                present=[lm["present"] for lm in result["landmarks"]],
                radius_mm=[lm.get("radius90_mm", float("nan")) for lm in result["landmarks"]],
            )
    results = [r for _, _, r in done]
    review.report(results)
    answers.write_answers(results, [image for _, image, _ in done], FLAGS.format, FLAGS.output,
                          coordinate_system=FLAGS.coordinate_system)


def run():
    cli.run_app(main)


if __name__ == "__main__":
    run()
