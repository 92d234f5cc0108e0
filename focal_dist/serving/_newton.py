"""Damped Newton on convex objectives whose derivatives are sums over every worker.

K independent problems (one per output for Platt scaling, one for temperature scaling)
share each iteration. Every worker evaluates its local sums at the same points; one
SUM over workers of the packed vector [f (K), g (K*P), H (K*P*P)] gives

    F(θ) = (1/N) sum over all examples f_i(θ) + R(θ),  its gradient and Hessian,

the same on every worker; every decision below is taken from those sums, so all
workers step in lockstep and stop after the same number of collectives, and the
result equals one process's fit on the whole split up to the summation order
(~1e-15 relative in F) and the stopping tolerance.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from focal_dist.serving._shards import sum_over_workers

# Newton decrement λ² = -g·d (d the Newton step) at which a problem is solved: the
# parameters are then within about sqrt(λ² / curvature) of the optimum, ~1e-10 here.
_SOLVED = 1e-22
# Below this λ² the objective's decrease is beneath float64 resolution, so the
# sufficient-decrease test can no longer be evaluated; the full step is taken
# (Newton's quadratic phase).
_FULL_STEP = 1e-12
_ARMIJO = 1e-4
_MAX_EVALUATIONS = 200
_MIN_STEP = 2.0**-40
_STALLED = 1e-10


def _direction(gradient: np.ndarray, hessian: np.ndarray) -> np.ndarray:
    """-(H + μI)^-1 g with the smallest μ in {0, 1e-12, ..., 1e4} x (1 + max diag H)
    that makes H + μI positive definite (H is singular when, e.g., every logit is equal)."""
    size = len(gradient)
    scale = 1.0 + float(np.max(np.abs(np.diag(hessian))))
    for damping in [0.0, *(scale * 10.0**k for k in range(-12, 5))]:
        try:
            factor = np.linalg.cholesky(hessian + damping * np.eye(size))
        except np.linalg.LinAlgError:
            continue
        return -np.linalg.solve(factor.T, np.linalg.solve(factor, gradient))
    return -gradient / scale


def minimize(
    local_sums: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
    theta: np.ndarray,
    *,
    backend,
    num_examples: int,
    regularizer: Callable | None = None,
    what: str,
) -> np.ndarray:
    """θ [K, P] minimising each F_k; `local_sums(θ)` returns this worker's (f [K],
    g [K, P], H [K, P, P]) summed over its examples; `regularizer(θ)` the same for R,
    added once after the sum over workers.

    Raises:
      RuntimeError: a problem is not solved within 200 evaluations, or its line search
        stalls far from the optimum (names `what`); on every worker alike.
    """
    theta = np.array(theta, np.float64)
    num_problems, size = theta.shape

    def evaluate(point):
        f, g, h = local_sums(point)
        packed = np.concatenate([f.ravel(), g.ravel(), h.ravel()])
        total = sum_over_workers(backend, packed) / num_examples
        f = total[:num_problems]
        g = total[num_problems : num_problems * (1 + size)].reshape(num_problems, size)
        h = total[num_problems * (1 + size) :].reshape(num_problems, size, size)
        if regularizer is not None:
            rf, rg, rh = regularizer(point)
            f, g, h = f + rf, g + rg, h + rh
        return f, g, h

    value, gradient, hessian = evaluate(theta)
    direction = np.stack([_direction(g, h) for g, h in zip(gradient, hessian, strict=True)])
    decrement = -np.sum(gradient * direction, axis=1)
    step = np.ones(num_problems)
    solved = decrement <= _SOLVED
    for _ in range(_MAX_EVALUATIONS):
        if solved.all():
            return theta
        trial = np.where(solved[:, None], theta, theta + step[:, None] * direction)
        trial_value, trial_gradient, trial_hessian = evaluate(trial)
        for k in np.flatnonzero(~solved):
            sufficient = trial_value[k] <= value[k] - _ARMIJO * step[k] * decrement[k]
            if decrement[k] <= _FULL_STEP or sufficient:
                theta[k], value[k] = trial[k], trial_value[k]
                gradient[k], hessian[k] = trial_gradient[k], trial_hessian[k]
                direction[k] = _direction(gradient[k], hessian[k])
                decrement[k] = -gradient[k] @ direction[k]
                step[k] = 1.0
                solved[k] = decrement[k] <= _SOLVED
            elif step[k] > _MIN_STEP:
                step[k] /= 2
            elif decrement[k] <= _STALLED:
                # No decrease resolvable in float64 along a descent direction: the
                # point is optimal to working precision.
                solved[k] = True
            else:
                raise RuntimeError(
                    f"{what}: the line search of problem {k} stalled with Newton "
                    f"decrement {decrement[k]:.3g} (the objective is not smooth enough "
                    "in float64; are the logits finite and moderate?)"
                )
    raise RuntimeError(
        f"{what}: Newton's method did not converge in {_MAX_EVALUATIONS} evaluations "
        f"(decrement {decrement.tolist()})"
    )
