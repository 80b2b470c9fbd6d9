r"""lmk-prepare: images + landmarks -> TFRecord shards for both training stages.

  lmk-prepare --synthetic=300 --ndim=2 --output=build/data
  lmk-prepare --images=DIR --landmarks=senior.csv,junior.csv --spacing=0.1 \
      --global_spacing=1.0 --local_spacing=0.25 --fold=0 --output=build/isbi
  lmk-prepare --images=scans/ --landmarks=slicer/ --preset=ct --output=build/ct

Volumes (NIfTI, NRRD, MetaImage, DICOM series folders) pair with their
landmark file by name (scans/case1.nii.gz with slicer/case1.mrk.json), or by
--manifest; world points (LPS or RAS, as each file says) become voxel indices
through each volume's own origin, spacing and direction. Every file must name
the same landmarks, and a point outside its volume is refused unless
--allow_outside marks it absent.

Each image is resampled once to the global and once to the local spacing,
both isotropic whatever the input's. With --fold, that fold's images go to
val-* shards and the rest to train-*; <output>/dataset.json records the
landmark names and both spacings.
"""

from absl import flags

from lmk_tf import cli
from lmk_tf.method.presets import PRESETS, get_preset
from pipelines import source_flags

flags.adopt_module_key_flags(source_flags)
flags.DEFINE_string("output", None, "Directory for the shards and dataset.json.")
flags.DEFINE_float("global_spacing", None, "mm per pixel of the global stage (default: --preset's).")
flags.DEFINE_float("local_spacing", None, "mm per pixel of the local stage (default: --preset's).")
flags.DEFINE_enum("preset", "synthetic", list(PRESETS),
                  "Default stage spacings, as lmk-train's --preset: generated images, cephalograms, "
                  "CT, head MR, or the synthetic volume benchmark.")
flags.DEFINE_integer("num_shards", 4, "Shards per split and stage.", lower_bound=1)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    cli.import_tensorflow_quietly()
    from lmk_tf.data.prepare import prepare_records

    samples, names = source_flags.load_source()
    train, held_out = source_flags.split_source(samples)
    ndim = samples[0].load().ndim
    preset = get_preset(FLAGS.preset, ndim)
    g = FLAGS.global_spacing or preset.global_config.spacing
    loc = FLAGS.local_spacing or preset.local_config.spacing
    for split, subset in (("train", train), ("val", held_out)):
        if not subset:
            continue
        print(f"== preparing {len(subset)} {split} images (global {g} mm, local {loc} mm) -> {FLAGS.output}",
              flush=True)
        prepare_records(((s.image_id, s.load(), s.points) for s in subset), FLAGS.output, split=split,
                        landmark_names=names, global_spacing=g, local_spacing=loc,
                        num_shards=FLAGS.num_shards)
    print(f"done: {FLAGS.output}/dataset.json")


def run():
    cli.run_app(main, required=["output"])


if __name__ == "__main__":
    run()
