"""decision.target parsing, and choose_threshold against a brute force over every
candidate threshold; eval metrics at the decision against scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from focal_dist.distribute import get_backend
from focal_dist.serving import Target, ThresholdError, choose_threshold, parse_target
from focal_dist.serving.evaluation import evaluate_argmax, evaluate_thresholds

BACKEND = get_backend("default")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("f1", Target("f1")),
        ("recall:0.9", Target("recall", 0.9)),
        (" precision:1 ", Target("precision", 1.0)),
        ("cost:10", Target("cost", 10.0)),
        ("threshold:0", Target("threshold", 0.0)),
    ],
)
def test_targets_parse(text, expected):
    assert parse_target(text) == expected
    assert parse_target(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "accuracy",
            "decision.target must be f1, recall:R, precision:P, cost:K or threshold:T; "
            "got 'accuracy'",
        ),
        ("recall", "must be f1, recall:R, .* got 'recall'"),
        ("f1:0.5", "got 'f1:0.5'"),
        ("recall:1.5", r"decision.target 'recall:1.5': R must be a number in \(0, 1\]; got '1.5'"),
        ("precision:0", r"P must be a number in \(0, 1\]; got '0'"),
        ("cost:-2", "K must be a number > 0 .*; got '-2'"),
        ("threshold:abc", r"T must be a number in \[0, 1\]; got 'abc'"),
        ("cost:nan", "K must be a number > 0"),
        (0.5, r"decision.target must be a string .*; got 0.5"),
    ],
)
def test_bad_targets_name_the_value_and_the_form(text, message):
    with pytest.raises(ValueError, match=message):
        parse_target(text)


def _brute_force(scores, labels, target: Target, weights=(1.0, 1.0)):
    """Tries every rule "flag the scores >= s" (s a distinct score) and "flag none";
    returns (flagged mask, precision, recall, f1) of the rule the target picks."""
    w_neg, w_pos = weights
    candidates = [np.zeros(len(scores), bool)] if scores.max() < 1 else []
    candidates += [scores >= s for s in np.unique(scores)[::-1]]  # fewest flags first
    rows = []
    for flagged in candidates:
        tp, fp = (flagged & (labels == 1)).sum(), (flagged & (labels == 0)).sum()
        fn = (labels == 1).sum() - tp
        precision = w_pos * tp / (w_pos * tp + w_neg * fp) if flagged.any() else 0.0
        recall = tp / (tp + fn)
        f1 = 2 * w_pos * tp / (2 * w_pos * tp + w_neg * fp + w_pos * fn)
        cost = (target.value or 0) * w_pos * fn + w_neg * fp
        rows.append((flagged, precision, recall, f1, cost))
    some = [r for r in rows if r[0].any()]
    if target.kind == "f1":
        best = max(r[3] for r in some)
        pick = next(r for r in some if r[3] == best)
    elif target.kind == "recall":
        pick = next(r for r in some if r[2] >= target.value - 1e-12)
    elif target.kind == "precision":
        pick = [r for r in some if r[1] >= target.value - 1e-12][-1]
    else:
        best = min(r[4] for r in rows)
        pick = next(r for r in rows if r[4] == best)
    return pick[:4]


TARGETS = ["f1", "recall:0.9", "recall:1", "precision:0.5", "precision:0.3", "cost:5", "cost:200"]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("target", TARGETS)
def test_choose_threshold_equals_a_brute_force_over_every_threshold(seed, target):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    labels = (rng.random((n, 2)) < [0.1, 0.4]).astype(np.float64)
    scores = np.clip(labels * 0.25 + rng.beta(1, 4, size=(n, 2)), 0, 1)
    if seed % 2:
        scores = np.round(scores, 2)  # many ties
    decision = choose_threshold(scores, labels, target=target, backend=BACKEND)
    for c, point in enumerate(decision.points):
        flagged, precision, recall, f1 = _brute_force(
            scores[:, c], labels[:, c], parse_target(target)
        )
        np.testing.assert_array_equal(scores[:, c] >= point.threshold, flagged)
        np.testing.assert_allclose(
            [point.precision, point.recall, point.f1], [precision, recall, f1]
        )
        assert point.true_positives == (flagged & (labels[:, c] == 1)).sum()
        assert point.false_positives == (flagged & (labels[:, c] == 0)).sum()
        assert 0 <= point.threshold <= 1
    assert decision.target == str(parse_target(target))


def test_weighted_counts_equal_a_brute_force_at_the_deployment_prevalence():
    rng = np.random.default_rng(7)
    labels = (rng.random((500, 1)) < 0.2).astype(np.float64)
    scores = np.clip(labels * 0.3 + rng.random((500, 1)) * 0.7, 0, 1)
    weights = np.array([[1.5], [0.25]])  # (negative, positive)
    for target in ("f1", "precision:0.4", "cost:3"):
        decision = choose_threshold(
            scores, labels, target=target, backend=BACKEND, prevalence_weights=weights
        )
        flagged, precision, _, f1 = _brute_force(
            scores[:, 0], labels[:, 0], parse_target(target), (1.5, 0.25)
        )
        np.testing.assert_array_equal(scores[:, 0] >= decision.thresholds[0], flagged)
        np.testing.assert_allclose(
            [decision.points[0].precision, decision.points[0].f1], [precision, f1]
        )


def test_threshold_lies_midway_between_the_scores_it_separates():
    scores = np.array([[0.9], [0.8], [0.8], [0.3], [0.1]])
    labels = np.array([[1], [1], [0], [0], [0]])

    def threshold(labels, target):
        return choose_threshold(scores, labels, target=target, backend=BACKEND).thresholds[0]

    assert threshold(labels, "recall:1") == pytest.approx((0.8 + 0.3) / 2, abs=1e-15)
    assert threshold(labels, "precision:1") == pytest.approx((0.9 + 0.8) / 2, abs=1e-15)
    # Below the lowest score 0 is its neighbour; above the highest, 1.
    assert threshold(np.ones((5, 1)), "recall:1") == pytest.approx(0.05, abs=1e-15)
    nothing = choose_threshold(scores, np.zeros((5, 1)), target="cost:1", backend=BACKEND)
    assert nothing.thresholds[0] == pytest.approx(0.95, abs=1e-15)
    assert nothing.points[0].false_positives == 0
    top = choose_threshold(
        np.array([[1.0], [0.5]]), np.zeros((2, 1)), target="cost:1", backend=BACKEND
    )
    # No threshold in [0, 1] flags nothing: a probability of 1 is always flagged.
    assert top.thresholds == (0.75,)
    assert top.points[0].false_positives == 1


def test_adjacent_floats_get_a_threshold_that_still_separates_them():
    low = 0.5
    high = np.nextafter(low, 1.0)
    decision = choose_threshold(
        np.array([[high], [low]]), np.array([[1], [0]]), target="f1", backend=BACKEND
    )
    assert decision.thresholds == (high,)
    assert decision.points[0].f1 == 1.0


def test_an_unreachable_precision_names_the_best_achievable():
    scores = np.array([[0.9], [0.8], [0.7], [0.2]])
    labels = np.array([[0], [1], [0], [1]])
    with pytest.raises(
        ThresholdError, match=r"output 0: no threshold reaches precision 0.9 .* the best is 0.5 "
    ) as error:
        choose_threshold(scores, labels, target="precision:0.9", backend=BACKEND)
    assert error.value.best == 0.5
    assert error.value.output == 0


def test_no_positive_makes_f1_recall_and_precision_undefined():
    with pytest.raises(
        ThresholdError, match="output 0 has no positive example .* recall:0.5 is undefined"
    ):
        choose_threshold(
            np.array([[0.2], [0.4]]), np.zeros((2, 1)), target="recall:0.5", backend=BACKEND
        )


def test_fixed_threshold_and_eval_metrics_equal_scikit_learn():
    rng = np.random.default_rng(3)
    labels = (rng.random((300, 3)) < 0.3).astype(np.float64)
    scores = np.clip(labels * 0.2 + rng.random((300, 3)) * 0.8, 0, 1)
    thresholds = [0.5, 0.3, 0.7]
    decision = evaluate_thresholds(scores, labels, thresholds=thresholds, backend=BACKEND)
    fixed = choose_threshold(scores, labels, target="threshold:0.3", backend=BACKEND)
    assert fixed.thresholds == (0.3,) * 3
    assert fixed.target == "threshold:0.3"
    for c, point in enumerate(decision.points):
        p, r, f, _ = precision_recall_fscore_support(
            labels[:, c], scores[:, c] >= thresholds[c], average="binary"
        )
        np.testing.assert_allclose([point.precision, point.recall, point.f1], [p, r, f])
    np.testing.assert_allclose(fixed.points[1].f1, decision.points[1].f1)


def test_argmax_metrics_equal_scikit_learn():
    rng = np.random.default_rng(4)
    labels = rng.choice(4, size=400, p=[0.6, 0.2, 0.15, 0.05])
    probabilities = rng.dirichlet(np.ones(4), size=400) + np.eye(4)[labels] * 0.3
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    metrics = evaluate_argmax(probabilities, labels, backend=BACKEND)
    predicted = probabilities.argmax(axis=1)
    p, r, f, _ = precision_recall_fscore_support(
        labels, predicted, labels=range(4), zero_division=0
    )
    np.testing.assert_allclose(metrics["precision"], p)
    np.testing.assert_allclose(metrics["recall"], r)
    np.testing.assert_allclose(metrics["f1"], f)
    np.testing.assert_allclose(metrics["accuracy"], accuracy_score(labels, predicted))
    np.testing.assert_allclose(metrics["macro_f1"], f.mean())


def test_probabilities_outside_zero_one_are_refused():
    with pytest.raises(ValueError, match=r"probabilities must lie in \[0, 1\]; got \[-0.5, 0.5\]"):
        choose_threshold(
            np.array([[-0.5], [0.5]]), np.array([[0], [1]]), target="f1", backend=BACKEND
        )
    with pytest.raises(ValueError, match=r"prevalence_weights must be > 0 with shape \(2, 1\)"):
        choose_threshold(
            np.array([[0.1], [0.5]]),
            np.array([[0], [1]]),
            target="f1",
            backend=BACKEND,
            prevalence_weights=[1, 2],
        )


def test_class_ids_are_sent_to_the_argmax():
    with pytest.raises(ValueError, match=r"class ids: a multi-class model decides by the argmax"):
        choose_threshold(np.full((3, 3), 1 / 3), np.array([0, 2, 1]), target="f1", backend=BACKEND)
