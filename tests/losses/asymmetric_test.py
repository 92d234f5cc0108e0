"""asymmetric_loss against Ridnik et al.'s formula in NumPy float64, its gradient and its edges."""

import itertools
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from focal_dist import losses as fl
from tests.losses import numpy_reference as ref
from tests.losses.gradient_check import finite_difference_gradient, loss_and_gradient


def _inputs(shape, from_logits, seed, soft=False):
    rng = np.random.default_rng(seed)
    y_true = rng.random(shape) if soft else (rng.random(shape) < 0.3).astype(np.float64)
    y_pred = rng.uniform(-5, 5, shape) if from_logits else rng.uniform(0.01, 0.99, shape)
    return y_true, y_pred


GRID = list(
    itertools.product(
        [0.0, 0.5, 1.0],  # gamma_pos
        [0.0, 0.7, 4.0],  # gamma_neg
        [0.0, 0.05, 0.3],  # clip
        [False, True],  # from_logits
        [((8, 3), -1), ((3, 4, 2), 1)],
    )
)


@pytest.mark.parametrize(("gamma_pos", "gamma_neg", "clip", "from_logits", "shape_axis"), GRID)
def test_matches_the_papers_formula_in_numpy_float64(
    gamma_pos, gamma_neg, clip, from_logits, shape_axis
):
    shape, axis = shape_axis
    y_true, y_pred = _inputs(shape, from_logits, seed=len(shape))
    kwargs = dict(
        gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip, from_logits=from_logits, axis=axis
    )
    expected, _ = ref.asymmetric(y_true, y_pred, **kwargs)
    ours = fl.asymmetric_loss(y_true, y_pred, **kwargs)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10)


def test_soft_labels_enter_linearly():
    y_true, logits = _inputs((6, 4), True, seed=1, soft=True)
    expected, _ = ref.asymmetric(y_true, logits, gamma_pos=1.0, from_logits=True)
    ours = fl.asymmetric_loss(y_true, logits, gamma_pos=1.0, from_logits=True)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("from_logits", [False, True])
def test_no_focusing_and_no_clip_is_binary_crossentropy(from_logits):
    y_true, y_pred = _inputs((10, 4), from_logits, seed=2)
    ours = fl.asymmetric_loss(
        y_true, y_pred, gamma_pos=0.0, gamma_neg=0.0, clip=0.0, from_logits=from_logits
    )
    bce = keras.losses.binary_crossentropy(y_true, y_pred, from_logits=from_logits)
    np.testing.assert_allclose(ours.numpy(), np.asarray(bce), rtol=1e-6)


def test_clip_discards_easy_negatives_and_leaves_positives_alone():
    # p = 0.04 and 0.049 are below clip = 0.05: a negative there adds exactly 0, and
    # so does its gradient; a positive at the same p is unaffected by the clip.
    p = np.array([[0.04, 0.049, 0.2]])
    logits = np.log(p / (1 - p))
    loss, grad = loss_and_gradient(
        fl.asymmetric_loss, np.zeros_like(p), logits, tf.float64, clip=0.05, from_logits=True
    )
    per_element, _ = ref.asymmetric(np.zeros_like(p), logits, clip=0.05, from_logits=True, axis=0)
    assert per_element[:2].tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(grad[0, :2], [0.0, 0.0])
    assert grad[0, 2] > 0
    positives = fl.asymmetric_loss(np.ones_like(p), logits, clip=0.05, from_logits=True)
    unclipped = fl.asymmetric_loss(np.ones_like(p), logits, clip=0.0, from_logits=True)
    np.testing.assert_array_equal(positives.numpy(), unclipped.numpy())


@pytest.mark.parametrize(
    ("gamma_pos", "gamma_neg", "clip"), [(0.0, 4.0, 0.05), (1.0, 0.5, 0.0), (0.3, 2.5, 0.2)]
)
@pytest.mark.parametrize("from_logits", [False, True])
def test_gradient_matches_float64_finite_differences(gamma_pos, gamma_neg, clip, from_logits):
    y_true, y_pred = _inputs((5, 3), from_logits, seed=3, soft=True)
    kwargs = dict(gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip, from_logits=from_logits)
    _, grad = loss_and_gradient(fl.asymmetric_loss, y_true, y_pred, tf.float64, **kwargs)
    numeric = finite_difference_gradient(
        lambda x: ref.asymmetric(y_true, x, **kwargs)[0].sum(), y_pred, h=1e-7
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


FOCUSING = sorted({(gamma_pos, gamma_neg, clip) for gamma_pos, gamma_neg, clip, _, _ in GRID})
FOCUSING += [(1.0, 9.0, 0.05), (2.0, 2.5, 0.7), (0.0, 1.0, 1.0)]


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize(("gamma_pos", "gamma_neg", "clip"), FOCUSING)
def test_gradient_from_logits_matches_the_analytic_derivative_in_float64(
    gamma_pos, gamma_neg, clip, detach
):
    # Soft labels, logits from saturated to moderate: every branch of the written-out
    # gradient (p_m below and above 1/2, p below the clip, both signs of x).
    rng = np.random.default_rng(5)
    logits = np.concatenate([rng.uniform(-8, 8, (6, 4)), [[-40.0, 40.0, -1e4, 1e4]]])
    y_true = rng.random(logits.shape)
    kwargs = dict(gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip)
    _, grad = loss_and_gradient(
        fl.asymmetric_loss,
        y_true,
        logits,
        tf.float64,
        from_logits=True,
        detach_focusing=detach,
        **kwargs,
    )
    expected = ref.asymmetric_gradient(y_true, logits, detach_focusing=detach, **kwargs)
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-300)


# sqrt(float32 tiny) = 1.08e-19 and sqrt(float64 tiny) = 1.49e-154 separate the clips whose
# log q is taken in log space from those where (1 - p) + clip cannot underflow.
@pytest.mark.parametrize(
    ("dtype", "clip"),
    [
        (tf.float32, 1e-30),
        (tf.float32, 1e-19),
        (tf.float32, 1.2e-19),
        (tf.float32, 1e-12),
        (tf.float64, 1e-200),
        (tf.float64, 1e-160),
        (tf.float64, 1e-150),
        (tf.float64, 1e-30),
    ],
)
def test_tiny_clips_on_both_sides_of_sqrt_tiny_match_the_reference(dtype, clip):
    # Saturated logits: 1 - p underflows (x >= 88 in float32, 745 in float64) while the
    # clip still decides log q = log((1 - p) + clip).
    logits = np.array([[-1e4, -60.0, -44.0, 0.0, 30.0, 88.0, 200.0, 800.0, 1e4]])
    y_true = np.array([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    kwargs = dict(gamma_pos=0.5, gamma_neg=2.5, clip=clip)
    loss, grad = loss_and_gradient(
        fl.asymmetric_loss, y_true, logits, dtype, from_logits=True, **kwargs
    )
    expected, _ = ref.asymmetric(y_true, logits, from_logits=True, **kwargs)
    rtol = 1e-6 if dtype == tf.float32 else 1e-12
    np.testing.assert_allclose(loss, expected.sum(), rtol=rtol)
    assert np.all(np.isfinite(grad))
    # Where 1 - p underflows, only gradients below sqrt(tiny) are lost (tiny / clip).
    atol = np.sqrt(np.finfo(dtype.as_numpy_dtype).tiny)
    expected_grad = ref.asymmetric_gradient(y_true, logits, **kwargs)
    np.testing.assert_allclose(grad, expected_grad, rtol=rtol * 10, atol=atol)


@pytest.mark.parametrize(
    ("gamma_pos", "gamma_neg", "clip"), [(1.0, 4.0, 0.05), (0.0, 4.0, 0.05), (1.0, 2.0, 0.0)]
)
def test_hard_labels_give_timms_asymmetric_loss_multilabel_times_the_label_count(
    gamma_pos, gamma_neg, clip
):
    # timm's AsymmetricLossMultiLabel: -sum over batch and labels, logs clamped at 1e-8
    # (inactive for these logits), the weight (1 - p_t)^(g+ y + g- (1 - y)).
    rng = np.random.default_rng(6)
    logits = rng.uniform(-8, 8, (16, 5))
    y_true = (rng.random(logits.shape) < 0.3).astype(np.float64)
    kwargs = dict(gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip)
    ours = fl.asymmetric_loss(y_true, logits, from_logits=True, **kwargs).numpy()
    theirs = ref.timm_asymmetric_multilabel(y_true, logits, **kwargs)
    np.testing.assert_allclose(ours.sum() * logits.shape[-1], theirs, rtol=1e-10)


@pytest.mark.parametrize("from_logits", [False, True])
def test_detach_focusing_differentiates_only_the_log_terms(from_logits):
    # The authors' disable_torch_grad_focal_loss=True: the focusing weights are constants.
    y_true, y_pred = _inputs((5, 3), from_logits, seed=4)
    kwargs = dict(gamma_pos=1.0, gamma_neg=3.0, clip=0.1, from_logits=from_logits)
    loss, grad = loss_and_gradient(
        fl.asymmetric_loss, y_true, y_pred, tf.float64, detach_focusing=True, **kwargs
    )
    expected, weights = ref.asymmetric(y_true, y_pred, **kwargs)
    np.testing.assert_allclose(loss, expected.sum(), rtol=1e-10)
    numeric = finite_difference_gradient(
        lambda x: ref.asymmetric(y_true, x, weights=weights, **kwargs)[0].sum(), y_pred, h=1e-7
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)
    _, full = loss_and_gradient(fl.asymmetric_loss, y_true, y_pred, tf.float64, **kwargs)
    assert np.abs(full - grad).max() > 1e-3  # the two gradients differ


@pytest.mark.parametrize("clip", [0.0, 0.05, 1.0])
def test_probabilities_of_exactly_zero_and_one_have_finite_gradient(clip):
    y_true = np.array([[0.0, 1.0, 0.0, 1.0]])
    probabilities = np.array([[0.0, 1.0, 1.0, 0.0]])
    loss, grad = loss_and_gradient(
        fl.asymmetric_loss, y_true, probabilities, gamma_pos=0.5, gamma_neg=0.5, clip=clip
    )
    assert np.isfinite(loss)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(gamma_neg=-1.0), r"gamma_neg.*>= 0.*-1\.0"),
        (dict(gamma_pos=float("nan")), r"gamma_pos.*nan"),
        (dict(clip=1.5), r"clip.*\[0, 1\].*1\.5"),
        (dict(clip=None), r"clip.*None"),
        (dict(detach_focusing="yes"), r"detach_focusing.*True or False.*'yes'"),
        (dict(axis=2), r"axis.*\[-2, 2\).*2"),
    ],
)
def test_bad_arguments_raise_naming_argument_value_and_expectation(kwargs, match):
    y = np.eye(3)[[0, 1, 2, 0]]
    with pytest.raises(ValueError, match=match):
        fl.asymmetric_loss(y, y, **kwargs)


def _compiled_step_counts(loss_fn, rows=2**12):
    """(exp + log + log1p per element, element-sized buffers between fusions) of the XLA
    step loss -> sum -> gradient, read from its optimized HLO (compiled, never run)."""

    @tf.function(jit_compile=True)
    def step(labels, logits):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            total = tf.reduce_sum(loss_fn(labels, logits))
        return total, tape.gradient(total, logits)  # both, or XLA drops the loss's loop

    spec = tf.TensorSpec([rows, 8], tf.float32)
    hlo = step.experimental_get_compiler_ir(tf.zeros(spec.shape), tf.zeros(spec.shape))(
        stage="optimized_hlo"
    )
    element = re.escape(f"f32[{rows},8]") + r"\{1,0\} "
    transcendental = len(re.findall(element + r"(?:exponential|log|log-plus-one)\(", hlo))
    entry = hlo[hlo.index("\nENTRY") :]
    buffers = len(re.findall(r"= " + element + r"fusion\(", entry)) - 1  # less the gradient
    return transcendental, buffers


@pytest.mark.parametrize("detach", [False, True])
def test_under_xla_asl_writes_out_no_more_buffers_than_plain_focal(detach):
    # The written-out gradient reads only exp(-|x|) from the forward and recomputes the
    # rest in forms XLA does not merge with the forward's (asymmetric.py); a shared log or
    # division would be written out in full between the loss's loop and the gradient's.
    asl = fl.asymmetric_loss
    focal = fl.binary_focal_crossentropy
    asl_ops, asl_buffers = _compiled_step_counts(
        lambda y, x: asl(y, x, from_logits=True, detach_focusing=detach)
    )
    focal_ops, focal_buffers = _compiled_step_counts(
        lambda y, x: focal(y, x, gamma=2.0, from_logits=True)
    )
    assert asl_buffers <= focal_buffers
    assert asl_ops <= focal_ops + (1 if detach else 2)  # log q; the gradient's own log q
