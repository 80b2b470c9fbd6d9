"""The composed GlobalToLocal model: contract, serialization, geometry."""

import dataclasses

import keras
import numpy as np
import pytest

from lmk_tf.image import Image
from lmk_tf.method.config import NetConfig, StageConfig
from lmk_tf.method.graph import GlobalToLocal
from lmk_tf.method.model_dir import assemble
from lmk_tf.method.shape import shape_residual
from lmk_tf.synthetic import make_sample
from tests.conftest import call_graph
from tests.method import stand_ins
from tests.method.whole_image import local_estimates


def test_outputs_follow_the_contract(tiny_model_dir):
    image, _, names = make_sample(2, 4, shape=(70, 90), spacing=(0.8, 1.1))
    out = call_graph(assemble(tiny_model_dir), image)
    assert out["landmarks_index"].shape == (len(names), 2)
    np.testing.assert_allclose(out["landmarks_mm"], out["landmarks_index"] * [0.8, 1.1], rtol=1e-6)
    assert out["present"].dtype == bool and out["confidence"].shape == (len(names),)
    assert np.all((out["confidence"] >= 0) & (out["confidence"] <= 1))


def test_shape_signal_is_each_landmark_against_the_training_shape_and_zero_without_weights(tiny_model_dir):
    model = assemble(tiny_model_dir)
    assert model.shape_weights is not None  # lmk-prepare fitted them on the training images
    image, _, _ = make_sample(2, 4, shape=(70, 90), spacing=(0.8, 1.1))
    out = call_graph(model, image)
    np.testing.assert_allclose(out["shape_mm"], shape_residual(out["landmarks_mm"], model.shape_weights),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="shape_weights must be"):
        GlobalToLocal(model.global_net, model.local_net, model.global_config, model.local_config,
                      model.landmark_names, shape_weights=[[0.0, 1.0]])


def test_keras_save_and_load_round_trip(tiny_model_dir, tmp_path):
    model = assemble(tiny_model_dir)
    image, _, _ = make_sample(2, 5, shape=(64, 64))
    before = call_graph(model, image)
    path = str(tmp_path / "pipeline.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, GlobalToLocal)
    after = call_graph(loaded, image)
    np.testing.assert_allclose(after["landmarks_index"], before["landmarks_index"], atol=1e-4)
    assert loaded.get_config()["landmark_names"] == model.get_config()["landmark_names"]


# ----- geometry of the composed graph, with stand-in networks (tests/method/stand_ins.py) -----

def bowl_model(ndim, *, global_spacing, local_spacing, crop, starts, presence_threshold=0.5,
               local_iterations=1, global_confidence=0.9, global_far=stand_ins.FAR, local_confidence=0.8,
               bias_px=0.0, gain=1.0, encoding="cells"):
    g = StageConfig(stage="global", ndim=ndim, spacing=global_spacing, patch_size=16,
                    net=NetConfig(stem_stride=2, stage_filters=(8,), stage_strides=(2,)),
                    displacement_encoding=encoding)
    loc = StageConfig(stage="local", ndim=ndim, spacing=local_spacing, patch_size=crop,
                      net=NetConfig(stem_stride=1, stage_filters=(8, 8), stage_strides=(2, 2)),
                      displacement_encoding=encoding)
    assert g.net.total_stride == loc.net.total_stride == 4
    global_net = stand_ins.global_bowl_net(ndim, 4, starts, confidence=global_confidence, far=global_far,
                                           bias_px=bias_px, encoding=encoding)
    local_net = stand_ins.local_bowl_net(ndim, len(starts), crop, 4, confidence=local_confidence,
                                         gain=gain, encoding=encoding)
    names = [f"l{i}" for i in range(len(starts))]
    return GlobalToLocal(global_net, local_net, dataclasses.asdict(g), dataclasses.asdict(loc), names,
                         presence_threshold=presence_threshold, local_iterations=local_iterations)


# Every size ratio is an integer (the bowl stays exactly quadratic after resampling)
# while no stage spacing is an exact multiple of the input spacing: a scale taken
# from spacings instead of sizes is off by 1-2 %, offsets differ per axis
# (ratios 1, 2, 3, 6, 9), and one axis has an odd number of pixels.
CASES = {
    # 90 x 75 at (0.5, 1.0) mm: global 15 x 25 px (padded to 16 x 28), local 45 x 75 px.
    "2d": dict(shape=(90, 75), spacing=(0.5, 1.0), global_spacing=3.05, local_spacing=1.005, crop=16,
               points_mm=[(20.3, 18.7), (26.1, 55.4)], starts=[(0.5, 0.25), (0.5, 0.7)],
               encoding="cells"),
    # 24 x 63 x 36 at (1.5, 0.5, 0.75) mm: global 8 x 7 x 6 px (padded to 8^3), local 24 x 21 x 18 px.
    "3d": dict(shape=(24, 63, 36), spacing=(1.5, 0.5, 0.75), global_spacing=4.545, local_spacing=1.5075,
               crop=8, points_mm=[(17.2, 14.9, 12.4)], starts=[(0.5, 0.45, 0.4)], encoding="log"),
}


def run(model, image):
    """The graph called eagerly (tracing the stand-ins' Python loops would cost seconds)."""
    out = model({"image": image.array[..., None], "spacing": np.asarray(image.spacing, np.float32)})
    return {k: np.asarray(v) for k, v in out.items()}


def bowl_case(name, **overrides):
    case = dict(CASES[name], **overrides)
    image = Image(stand_ins.bowl_image(case["shape"], case["spacing"], case["points_mm"]), case["spacing"])
    truth = np.asarray(case["points_mm"]) / np.asarray(case["spacing"])
    model = bowl_model(len(case["shape"]), **{k: case[k] for k in case if k not in
                                              ("shape", "spacing", "points_mm")})
    return image, truth, model


@pytest.mark.parametrize("name", sorted(CASES))
def test_stand_in_networks_give_back_the_landmark_through_the_whole_graph(name):
    image, truth, model = bowl_case(name)
    out = run(model, image)
    # The global stage alone (resample, pad, cells, map back), then the local stage
    # (resample, crop around the estimate, map back): both within 0.05 px of the truth.
    np.testing.assert_allclose(out["global_index"], truth, atol=0.05)
    np.testing.assert_allclose(out["landmarks_index"], truth, atol=0.05)
    np.testing.assert_allclose(out["landmarks_mm"], truth * image.spacing, atol=0.05 * max(image.spacing))
    # `confidence` is the local stage's probability mass (the stand-in puts 0.8 in one cell).
    np.testing.assert_allclose(out["confidence"], 0.8, atol=1e-4)
    assert out["present"].all()
    assert (out["shape_mm"] == 0).all()  # a graph given no shape weights has no shape signal


@pytest.mark.parametrize("name", sorted(CASES))
def test_local_stage_corrects_a_global_error(name):
    # The global estimate is off by 1.5 global pixels per axis; the local stage finds the truth.
    image, truth, model = bowl_case(name, bias_px=1.5)
    out = run(model, image)
    assert np.abs(out["global_index"] - truth).min() > 1.0
    np.testing.assert_allclose(out["landmarks_index"], truth, atol=0.05)


def test_each_local_iteration_refines_from_the_previous_estimate():
    # A local stage that moves half way: error = global error / 2^iterations.
    errors = {}
    for iterations in (1, 3):
        image, truth, model = bowl_case("2d", bias_px=1.0, gain=0.5, local_iterations=iterations)
        out = run(model, image)
        start = out["global_index"] - truth
        np.testing.assert_allclose(out["landmarks_index"] - truth, start / 2**iterations, atol=0.05)
        errors[iterations] = np.abs(out["landmarks_index"] - truth).max()
    assert errors[3] < errors[1] / 3


def test_refine_from_runs_the_local_stage_from_a_given_start():
    # The stand-in local stage moves half way to the truth from wherever it starts.
    image, truth, model = bowl_case("2d", bias_px=1.0, gain=0.5)
    out = run(model, image)
    from_global = np.asarray(model.refine_from(image.array[..., None], image.spacing, out["global_index"]))
    np.testing.assert_allclose(from_global, out["landmarks_index"], atol=1e-4)
    start = truth + [[1.5, -2.0]]
    refined = np.asarray(model.refine_from(image.array[..., None], image.spacing, start))
    np.testing.assert_allclose(refined - truth, (start - truth) / 2, atol=0.05)


def test_global_passes_on_shifted_copies_map_back_to_the_same_landmark():
    # Each copy is padded by half a cell before: a shift not undone would put its estimate
    # (and so the mean) half a global cell (3 mm here) off the truth. 2D only: the 3D case is
    # 6 global pixels deep, so a shifted copy's stand-in reads the bowl at the image border,
    # where resampling leaves it not quite quadratic.
    image, truth, model = bowl_case("2d")
    shifted = GlobalToLocal(model.global_net, model.local_net, model.global_config, model.local_config,
                            model.landmark_names, global_shifts=3)
    out = run(shifted, image)
    np.testing.assert_allclose(out["global_index"], truth, atol=0.05)
    np.testing.assert_allclose(out["landmarks_index"], truth, atol=0.05)


def test_global_shifts_average_passes_that_differ_and_keep_the_unshifted_signals(tiny_model_dir):
    model = assemble(tiny_model_dir)
    image, _, _ = make_sample(2, 4, shape=(70, 90), spacing=(0.8, 1.1))
    plain = call_graph(model, image)
    out = call_graph(GlobalToLocal(model.global_net, model.local_net, model.global_config, model.local_config,
                                   model.landmark_names, global_shifts=3), image)
    moved = np.linalg.norm((out["global_index"] - plain["global_index"]) * image.spacing, axis=-1)
    cell_mm = model.global_config["spacing"] * StageConfig.from_dict(model.global_config).net.total_stride
    assert moved.max() > 1e-3 and moved.max() < cell_mm
    for signal in ("global_spread_mm", "global_mass"):
        np.testing.assert_allclose(out[signal], plain[signal], rtol=1e-5, err_msg=signal)
    with pytest.raises(ValueError, match="global_shifts must be 0, 1, 2 or 3"):
        GlobalToLocal(model.global_net, model.local_net, model.global_config, model.local_config,
                      model.landmark_names, global_shifts=4)


def test_landmark_outside_the_image_is_not_present():
    # The second bowl's minimum lies 10 mm beyond the last column: the global
    # stand-in finds it there (with 0.9 confidence), but the graph must say absent.
    image, truth, model = bowl_case("2d", points_mm=[(20.3, 18.7), (26.1, 84.0)])
    out = run(model, image)
    np.testing.assert_allclose(out["landmarks_index"], truth, atol=0.05)
    assert truth[1, 1] > image.shape[1] - 0.5
    assert out["present"].tolist() == [True, False]


@pytest.mark.parametrize("threshold,present", [(0.5, False), (0.25, True)])
def test_presence_threshold_applies_to_the_global_confidence(threshold, present):
    image, truth, model = bowl_case("2d", global_confidence=0.3, presence_threshold=threshold)
    out = run(model, image)
    np.testing.assert_allclose(out["landmarks_index"], truth, atol=0.05)
    assert out["present"].tolist() == [present, present]


def test_votes_count_when_every_global_probability_underflows():
    # p = 1e-44 in every cell: 0 in float32. Weighted from the logits, every
    # cell's exact vote still counts; weighted from probabilities, none would.
    tiny = 1e-44
    image, truth, model = bowl_case("2d", global_confidence=tiny, global_far=stand_ins.logit(tiny))
    out = run(model, image)
    np.testing.assert_allclose(out["global_index"], truth, atol=0.05)
    assert out["present"].tolist() == [False, False]


# ----- a local ensemble -----

def _single(model, local_net, local_config):
    return GlobalToLocal(model.global_net, local_net, model.global_config, local_config, model.landmark_names,
                         shift_crops=model.shift_crops, shape_weights=model.shape_weights)


# A member at 1.5x the first net's spacing cuts its own, wider sub-images around the same points.
@pytest.mark.parametrize("coarser", [1.0, 1.5])
def test_a_local_ensemble_answers_the_mean_of_its_members_and_their_spread(tiny_model_dir, coarser):
    from lmk_tf.training.trainer import build_stage_model

    model = assemble(tiny_model_dir)
    config = {**model.local_config, "seed": 5, "spacing": model.local_config["spacing"] * coarser}
    keras.utils.set_random_seed(5)
    other = build_stage_model(StageConfig.from_dict(config), len(model.landmark_names))
    other.set_weights([w + np.random.default_rng(1).normal(0, 0.05, w.shape).astype(w.dtype)
                       for w in model.local_net.get_weights()])
    image, _, _ = make_sample(2, 4, shape=(70, 90), spacing=(0.8, 1.1))
    first = call_graph(_single(model, model.local_net, model.local_config), image)
    second = call_graph(_single(model, other, config), image)
    both = call_graph(GlobalToLocal(model.global_net, model.local_net, model.global_config, model.local_config,
                                    model.landmark_names, extra_local_nets=[other], extra_local_configs=[config]),
                      image)
    np.testing.assert_allclose(both["landmarks_index"], (first["landmarks_index"] + second["landmarks_index"]) / 2,
                               atol=1e-3)
    apart = np.linalg.norm((first["landmarks_index"] - second["landmarks_index"]) * [0.8, 1.1], axis=-1)
    assert apart.max() > 1e-3  # the members do differ
    np.testing.assert_allclose(both["ensemble_mm"], apart / 2, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(first["ensemble_mm"], 0.0, atol=1e-6)



def test_inverse_variance_weighting_answers_the_members_weighed_by_their_own_spreads(tiny_model_dir):
    from lmk_tf.training.trainer import build_stage_model

    model = assemble(tiny_model_dir)
    keras.utils.set_random_seed(5)
    other = build_stage_model(StageConfig.from_dict(model.local_config), len(model.landmark_names))
    # Perturbed enough that the two nets' estimates and spreads differ clearly.
    other.set_weights([w + np.random.default_rng(2).normal(0, 0.3, w.shape).astype(w.dtype)
                       for w in model.local_net.get_weights()])
    image, _, _ = make_sample(2, 4, shape=(70, 90), spacing=(0.8, 1.1))
    first = call_graph(_single(model, model.local_net, model.local_config), image)
    second = call_graph(_single(model, other, model.local_config), image)

    def ensemble(weighting):
        return call_graph(GlobalToLocal(model.global_net, model.local_net, model.global_config, model.local_config,
                                        model.landmark_names, extra_local_nets=[other],
                                        extra_local_configs=[model.local_config], member_weighting=weighting), image)

    mean, weighed = ensemble("mean"), ensemble("inverse_variance")
    w1, w2 = 1.0 / first["local_spread_mm"] ** 2, 1.0 / second["local_spread_mm"] ** 2
    expected = (w1[:, None] * first["landmarks_index"] + w2[:, None] * second["landmarks_index"]) / (w1 + w2)[:, None]
    np.testing.assert_allclose(weighed["landmarks_index"], expected, atol=1e-3)
    assert np.abs(weighed["landmarks_index"] - mean["landmarks_index"]).max() > 0.05  # not the mean
    # How far the members land apart does not depend on how they are weighed.
    np.testing.assert_allclose(weighed["ensemble_mm"], mean["ensemble_mm"], atol=1e-5)


def test_an_unknown_member_weighting_is_refused(tiny_model_dir):
    model = assemble(tiny_model_dir)
    with pytest.raises(ValueError, match="member_weighting must be one of.*got 'median'"):
        GlobalToLocal(model.global_net, model.local_net, model.global_config, model.local_config,
                      model.landmark_names, member_weighting="median")


def test_a_member_that_cuts_other_sub_images_is_refused(tiny_model_dir):
    model = assemble(tiny_model_dir)
    config = {**model.local_config, "patch_size": model.local_config["patch_size"] * 2}
    with pytest.raises(ValueError, match="member 2 cuts other sub-images.*patch_size"):
        GlobalToLocal(model.global_net, model.local_net, model.global_config, model.local_config,
                      model.landmark_names, extra_local_nets=[model.local_net], extra_local_configs=[config])


# ----- the shifted sub-images of shift_crops -----

def _first_net_estimates(model, image, centres):
    """The first local net's estimates (local-grid indices) from sub-images centred at `centres`
    [L, ndim], cut from the whole resampled image as the paper's local stage does."""
    import tensorflow as tf

    from lmk_tf.method.preprocess import normalise_intensity, resample

    loc = StageConfig.from_dict(model.local_config)
    local_image = resample(normalise_intensity(tf.constant(image.array, tf.float32)[..., None]),
                           tf.constant(image.spacing, tf.float32), loc.spacing)[0]
    return np.asarray(local_estimates(model.local_net, loc, local_image, centres))


@pytest.mark.parametrize("members", [1, 2])
def test_shift_signal_is_the_first_nets_disagreement_with_itself_on_shifted_sub_images(tiny_model_dir, members):
    from lmk_tf.method.graph import SHIFT_SIGNS
    from lmk_tf.method.preprocess import resampled_geometry

    model = assemble(tiny_model_dir)
    extra = dict(extra_local_nets=[model.local_net] * (members - 1),
                 extra_local_configs=[model.local_config] * (members - 1))
    shifted = GlobalToLocal(model.global_net, model.local_net, model.global_config, model.local_config,
                            model.landmark_names, shift_crops=4, **extra)
    plain = GlobalToLocal(model.global_net, model.local_net, model.global_config, model.local_config,
                          model.landmark_names, **extra)
    image, _, _ = make_sample(2, 4, shape=(70, 90), spacing=(0.8, 1.1))
    out, without = call_graph(shifted, image), call_graph(plain, image)
    # The shifted sub-images inform the signal only, never the estimate.
    np.testing.assert_allclose(out["landmarks_index"], without["landmarks_index"], atol=1e-4)
    np.testing.assert_allclose(without["shift_mm"], 0.0)

    loc = StageConfig.from_dict(model.local_config)
    _, scale, offset = (np.asarray(v) for v in resampled_geometry(image.array.shape, image.spacing, loc.spacing))
    centres = (out["global_index"] - offset) / scale
    first = offset + scale * _first_net_estimates(model, image, centres)
    np.testing.assert_allclose(out["landmarks_index"], first, atol=1e-3)
    moved = [offset + scale * _first_net_estimates(model, image, centres + np.asarray(d) * loc.patch_size / 8.0)
             for d in SHIFT_SIGNS[2]]
    expected = np.sqrt(np.mean([np.sum(np.square((m - first) * image.spacing), axis=-1) for m in moved], axis=0))
    assert expected.max() > 1e-2  # the tiny net does move with its sub-image
    np.testing.assert_allclose(out["shift_mm"], expected, rtol=1e-3, atol=1e-3)
