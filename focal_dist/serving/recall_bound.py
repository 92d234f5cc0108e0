r"""A recall target that holds on unseen data: the Clopper-Pearson lower bound.

With n positives in the calibration split, k of them flagged by a rule, the one-sided
lower Clopper-Pearson bound of the rule's recall at confidence 1 - a is

    L(k, n) = Beta^-1(a; k, n - k + 1)  (L(0, n) = 0),  i.e.  P(Bin(n, L) >= k) = a,

so P(true recall >= L) >= 1 - a over calibration splits (Clopper and Pearson 1934).
`decision.confidence` makes `recall:R` take the highest threshold whose bound reaches R:
the k*-th largest positive score, with

    k* = min{k : L(k, n) >= R} = min{k : P(Bin(n, R) >= k) <= a}

(L >= R iff the tail at R is at most a, since the tail grows with p). The bound can
never exceed L(n, n) = a^(1/n), so R needs at least

    n_min = min{n : a^(1/n) >= R} = ceil(ln a / ln R)   positives, all of them flagged

(29 for R = 0.9 at 0.95; 59 for 0.95 at 0.95); with fewer, `TooFewPositives` says how
many more. Lesion recall is the same rule with true components as the positives and,
as score, the size of the largest predicted component that touches each one
(`min_pixels_for_recall`). Computed in float64 from the exact binomial tail; no SciPy.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


class TooFewPositives(ValueError):
    """The split cannot support the target; `positives_needed` is n_min (or None when
    the model itself detects too few)."""

    def __init__(self, message: str, *, positives: int, positives_needed: int | None):
        super().__init__(message)
        self.positives, self.positives_needed = positives, positives_needed


@dataclasses.dataclass(frozen=True)
class RecallBound:
    """What a confident recall choice rests on (deploy.json's `recall_bound`)."""

    target: float  # R
    confidence: float  # 1 - a
    positives: int  # n
    detections_needed: int  # k*
    detected: int  # k at the chosen threshold (>= k*; more when scores tie)
    lower_bound: float  # L(detected, n) >= R


def _check(target: float, confidence: float) -> float:
    if not 0.0 < target <= 1.0:
        raise ValueError(f"the recall target must be in (0, 1]; got {target!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"decision.confidence must be in (0, 1); got {confidence!r}")
    return 1.0 - confidence


def _log_choose(successes: np.ndarray, trials: int) -> np.ndarray:
    """log C(trials, j) for each j of `successes`."""
    lgamma = np.frompyfunc(math.lgamma, 1, 1)
    return (
        math.lgamma(trials + 1)
        - lgamma(successes + 1).astype(np.float64)
        - lgamma(trials - successes + 1).astype(np.float64)
    )


def _tail(log_choose: np.ndarray, successes: np.ndarray, trials: int, p: float) -> float:
    """sum over `successes` j of P(Bin(trials, p) = j), 0 < p < 1, in float64."""
    log_pmf = log_choose + successes * math.log(p) + (trials - successes) * math.log1p(-p)
    peak = log_pmf.max()
    return float(min(1.0, math.exp(peak) * np.exp(log_pmf - peak).sum()))


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(Bin(n, p) >= k), summed exactly over j = k .. n in float64."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    successes = np.arange(k, n + 1)
    return _tail(_log_choose(successes, n), successes, n, p)


def recall_lower_bound(detected: int, positives: int, *, confidence: float) -> float:
    """L(k, n) = Beta^-1(1 - confidence; k, n - k + 1), 0 for k = 0 (module docstring),
    by bisection on P(Bin(n, p) >= k) = 1 - confidence to float64 resolution."""
    alpha = _check(0.5, confidence)
    k, n = int(detected), int(positives)
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"need 0 <= detected <= positives, positives >= 1; got {k}, {n}")
    if k == 0:
        return 0.0
    if k == n:
        return alpha ** (1.0 / n)  # P(Bin(n, p) >= n) = p^n
    successes = np.arange(k, n + 1)
    log_choose = _log_choose(successes, n)
    low, high = 0.0, 1.0
    for _ in range(2000):  # halves the interval down to float64's spacing
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if _tail(log_choose, successes, n, middle) < alpha:
            low = middle
        else:
            high = middle
    return low


def positives_needed(target: float, *, confidence: float) -> int:
    """n_min = min{n : L(n, n) >= R}: the fewest positives, all detected, whose bound
    reaches R (ValueError for R = 1, which no finite split supports)."""
    alpha = _check(target, confidence)
    if target >= 1.0:
        raise ValueError("a recall target of 1 has no lower confidence bound below 1 to reach")
    n = max(1, math.ceil(math.log(alpha) / math.log(target)))
    while n > 1 and alpha ** (1.0 / (n - 1)) >= target:  # ceil of a rounded quotient
        n -= 1
    while alpha ** (1.0 / n) < target:
        n += 1
    return n


def detections_needed(positives: int, target: float, *, confidence: float) -> int:
    """k* = min{k : P(Bin(n, R) >= k) <= 1 - confidence} for n = `positives`.

    Raises:
      TooFewPositives: n < n_min, naming n_min and how many more positives it takes.
    """
    alpha = _check(target, confidence)
    needed = positives_needed(target, confidence=confidence)
    if positives < needed:
        raise TooFewPositives(
            f"recall >= {target!r} at confidence {confidence!r} needs at least {needed} "
            f"positives: with n positives, all detected, the lower bound is "
            f"(1 - {confidence!r})^(1/n), below {target!r} for n < {needed}; the "
            f"calibration split has {positives} ({needed - positives} more needed)",
            positives=positives,
            positives_needed=needed,
        )
    successes = np.arange(positives + 1)
    log_pmf = (
        _log_choose(successes, positives)
        + successes * math.log(target)
        + (positives - successes) * math.log1p(-target)
    )
    tails = np.cumsum(np.exp(log_pmf)[::-1])[::-1]  # tails[k] = P(X >= k)
    return int(np.flatnonzero(tails <= alpha)[0])


def min_pixels_for_recall(
    true_by_detecting_size, target: float, *, confidence: float | None
) -> tuple[int, RecallBound | None]:
    """(m, bound): the largest min_component_pixels m >= 1 whose lesion recall reaches R
    (with `confidence`: whose lower bound does), from one class's summed
    `lesion_histograms` row 0 (true components by the size of their largest touching
    predicted component; bin 0: missed).

    detected(m) = sum_{s >= m} h[s];  m = max{m >= 1 : detected(m) >= k},
    k = k* with `confidence`, else the plain rule's ceil(R n) (relative 1e-12 allowed).

    Raises:
      TooFewPositives: too few true components, or too few detected even with m = 1.
    """
    counts = np.asarray(true_by_detecting_size, np.int64)
    positives = int(counts.sum())
    if confidence is None:
        _check(target, 0.5)
        needed = math.ceil(target * positives * (1 - 1e-12))
    else:
        needed = detections_needed(positives, target, confidence=confidence)
    detected = np.cumsum(counts[::-1])[::-1]  # detected[m] = sum_{s >= m} h[s]
    if positives == 0 or detected[1] < needed:
        kept = int(detected[1]) if positives else 0
        raise TooFewPositives(
            f"lesion recall >= {target!r} needs {needed} of {positives} true components "
            f"detected; the model detects {kept} with every predicted component kept: "
            "no min_component_pixels reaches it",
            positives=positives,
            positives_needed=None,
        )
    m = int(np.flatnonzero(detected[1:] >= needed)[-1]) + 1
    if confidence is None:
        return m, None
    k = int(detected[m])
    return m, RecallBound(
        target=float(target),
        confidence=float(confidence),
        positives=positives,
        detections_needed=needed,
        detected=k,
        lower_bound=recall_lower_bound(k, positives, confidence=confidence),
    )
