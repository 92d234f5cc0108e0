"""decision.confidence: Clopper-Pearson recall bounds against scipy.stats.beta, and a
simulation where the confident threshold holds on unseen data and the plain one not."""

import numpy as np
import pytest
from scipy import special, stats

from focal_dist.distribute import get_backend
from focal_dist.serving import ThresholdError, choose_threshold
from focal_dist.serving import recall_bound as rb

BACKEND = get_backend("default")


def _scipy_bound(k, n, confidence):
    return 0.0 if k == 0 else stats.beta.ppf(1 - confidence, k, n - k + 1)


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
@pytest.mark.parametrize(
    ("k", "n"), [(0, 5), (1, 1), (1, 10), (9, 10), (29, 29), (36, 40), (500, 1000), (3, 10**5)]
)
def test_lower_bound_is_the_beta_quantile(k, n, confidence):
    ours = rb.recall_lower_bound(k, n, confidence=confidence)
    np.testing.assert_allclose(ours, _scipy_bound(k, n, confidence), rtol=1e-8, atol=1e-15)


@pytest.mark.parametrize(
    ("target", "confidence", "expected"), [(0.9, 0.95, 29), (0.95, 0.95, 59), (0.8, 0.9, 11)]
)
def test_positives_needed_is_the_smallest_split_whose_perfect_recall_reaches_the_target(
    target, confidence, expected
):
    reach = [n for n in range(1, 500) if _scipy_bound(n, n, confidence) >= target]
    assert reach[0] == expected
    assert rb.positives_needed(target, confidence=confidence) == expected


@pytest.mark.parametrize("n", [29, 40, 60, 100, 1000])
@pytest.mark.parametrize(("target", "confidence"), [(0.9, 0.95), (0.8, 0.99)])
def test_detections_needed_is_the_fewest_detections_whose_bound_reaches_the_target(
    n, target, confidence
):
    if n < rb.positives_needed(target, confidence=confidence):
        pytest.skip("too few positives for this target (tested below)")
    k = rb.detections_needed(n, target, confidence=confidence)
    assert _scipy_bound(k, n, confidence) >= target
    assert _scipy_bound(k - 1, n, confidence) < target


def test_too_few_positives_names_how_many_more():
    with pytest.raises(rb.TooFewPositives, match=r"at least 29 positives.* has 20 \(9 more") as e:
        rb.detections_needed(20, 0.9, confidence=0.95)
    assert (e.value.positives, e.value.positives_needed) == (20, 29)
    scores, labels = np.linspace(0.05, 0.95, 40), np.tile([0.0, 1.0], 20)
    with pytest.raises(ThresholdError, match=r"output 0: recall >= 0.9 .*\(9 more needed\)"):
        choose_threshold(scores, labels, target="recall:0.9", backend=BACKEND, confidence=0.95)


def test_confidence_only_bounds_recall_targets():
    with pytest.raises(ValueError, match="decision.confidence bounds a recall:R target"):
        choose_threshold([0.2, 0.8], [0, 1], target="f1", backend=BACKEND, confidence=0.95)


def test_confident_threshold_flags_the_kth_largest_positive_score_and_records_the_bound():
    rng = np.random.default_rng(0)
    labels = (rng.uniform(size=400) < 0.25).astype(np.float32)
    scores = np.clip(rng.normal(0.3 + 0.3 * labels, 0.15), 0, 1)
    decision = choose_threshold(
        scores, labels, target="recall:0.9", backend=BACKEND, confidence=0.95
    )
    positives = int(labels.sum())
    k = next(k for k in range(positives + 1) if _scipy_bound(k, positives, 0.95) >= 0.9)
    kth = np.sort(scores[labels == 1])[::-1][k - 1]
    threshold = decision.thresholds[0]
    assert threshold <= kth
    assert not np.any((scores >= threshold) & (scores < kth))  # nothing lower is flagged
    (bound,) = decision.recall_bounds
    assert (bound.positives, bound.detections_needed, bound.detected) == (positives, k, k)
    np.testing.assert_allclose(bound.lower_bound, _scipy_bound(k, positives, 0.95), rtol=1e-8)
    assert decision.to_dict()["recall_bounds"][0]["positives"] == positives


def test_confident_threshold_holds_on_unseen_data_where_the_plain_one_holds_half_the_time():
    """Positive scores sigmoid(N(1, 1.5)); 60 positives (and 240 negatives) per split;
    the population recall of each split's threshold is norm.sf((logit(t) - 1) / 1.5)."""
    rng = np.random.default_rng(1)
    repeats, target = 400, 0.9
    held = {"plain": 0, "confident": 0}
    for _ in range(repeats):
        labels = np.repeat([1.0, 0.0], [60, 240])
        logits = np.where(labels == 1, rng.normal(1.0, 1.5, 300), rng.normal(-1.0, 1.5, 300))
        scores = special.expit(logits)
        for rule, confidence in (("plain", None), ("confident", 0.95)):
            (threshold,) = choose_threshold(
                scores, labels, target=f"recall:{target}", backend=BACKEND, confidence=confidence
            ).thresholds
            recall = stats.norm.sf((special.logit(threshold) - 1.0) / 1.5)
            held[rule] += recall >= target
    # Clopper-Pearson guarantees >= 95%; 400 repeats put 92% 2.7 standard errors below.
    assert held["confident"] / repeats >= 0.92, held
    assert 0.3 <= held["plain"] / repeats <= 0.7, held


def test_lesion_min_pixels_is_the_largest_size_whose_bound_reaches_the_target():
    """Row 0 of the lesion histograms: 70 true components by the size of the largest
    predicted component touching them (0: missed)."""
    histogram = np.zeros(64, int)
    histogram[[0, 2, 3, 5, 8, 13, 21, 40, 63]] = [2, 3, 4, 5, 6, 10, 15, 20, 5]
    positives = histogram.sum()
    m, bound = rb.min_pixels_for_recall(histogram, 0.85, confidence=0.9)
    reach = [
        size
        for size in range(1, 64)
        if _scipy_bound(histogram[size:].sum(), positives, 0.9) >= 0.85
    ]
    assert m == max(reach)
    assert bound.detected == histogram[m:].sum()
    assert bound.positives == positives
    plain, none = rb.min_pixels_for_recall(histogram, 0.85, confidence=None)
    assert none is None
    assert plain == max(s for s in range(1, 64) if histogram[s:].sum() >= 0.85 * positives)
    assert plain >= m
    with pytest.raises(rb.TooFewPositives, match="the model detects 68 with every predicted"):
        rb.min_pixels_for_recall(histogram, 0.95, confidence=0.9)
