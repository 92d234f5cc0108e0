"""The objectives of calibration: local sums of the smoothed-target negative
log-likelihood and its first and second derivatives, for `_newton.minimize`.

    Platt, per output c, θ = (a, b), u_i = a z_i + b, p = sigmoid(u):
      f = sum_i softplus(u_i) - t_i u_i
      g = sum_i (p_i - t_i) [z_i, 1]
      H = sum_i p_i (1 - p_i) [z_i, 1]^T [z_i, 1]
    temperature and bias, θ = (β = 1/T, bias), l_ik = β z_ik + bias_k, p = softmax(l):
      f = sum_i logsumexp(l_i) - sum_k t_ik l_ik
      g = sum_i [sum_k r_ik z_ik, r_i],  r = p - t
      H = sum_i J_i^T (diag(p_i) - p_i p_i^T) J_i,  J_i = [z_i, I]

Both are convex in θ (logits linear in θ, softplus and logsumexp convex).
"""

from __future__ import annotations

import numpy as np


def platt_start(labels: np.ndarray, positives: np.ndarray, n: int):
    """(Platt's targets [n_local, C], θ0 [C, 2]): t+ = (N+ + 1)/(N+ + 2),
    t- = 1/(N- + 2); θ0 = (0, logit of the mean target), the best fit with a = 0."""
    on, off = (positives + 1) / (positives + 2), 1 / (n - positives + 2)
    mean_target = (positives * on + (n - positives) * off) / n
    theta0 = np.stack([np.zeros(len(positives)), np.log(mean_target / (1 - mean_target))], 1)
    return labels * on + (1 - labels) * off, theta0


def temperature_start(labels: np.ndarray, counts: np.ndarray, n: int):
    """(targets [n_local, C], θ0 [1, 1 + C]): an example of class k (N_k examples) has
    (N_k + 1)/(N_k + C) on k and 1/(N_k + C) elsewhere (Platt's rule for C = 2);
    θ0 = (β = 0, bias = centred log of the mean target), the best fit with β = 0."""
    num_classes = len(counts)
    on, off = (counts + 1) / (counts + num_classes), 1 / (counts + num_classes)
    targets = np.repeat(off[labels][:, None], num_classes, axis=1)
    targets[np.arange(len(labels)), labels] = on[labels]
    mean_target = (counts * on + off @ counts - off * counts) / n
    log_target = np.log(mean_target)
    return targets, np.concatenate([[0.0], log_target - log_target.mean()])[None]


def platt_sums(z: np.ndarray, targets: np.ndarray):
    """Local sums of softplus(u) - t u, u = a z + b, and its derivatives, per output."""

    def sums(theta):
        u = z * theta[:, 0] + theta[:, 1]
        e = np.exp(-np.abs(u))
        p = np.where(u >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        f = np.sum(np.maximum(u, 0) + np.log1p(e) - targets * u, axis=0)
        r, w = p - targets, p * (1 - p)
        g = np.stack([np.sum(r * z, axis=0), np.sum(r, axis=0)], axis=1)
        h_aa, h_ab, h_bb = np.sum(w * z * z, axis=0), np.sum(w * z, axis=0), np.sum(w, axis=0)
        h = np.stack([np.stack([h_aa, h_ab], -1), np.stack([h_ab, h_bb], -1)], axis=1)
        return f, g, h

    return sums


def temperature_sums(z: np.ndarray, targets: np.ndarray):
    """Local sums of logsumexp(l) - t·l, l = β z + bias, and its derivatives in (β, bias)."""

    def sums(theta):
        beta, bias = theta[0, 0], theta[0, 1:]
        logits = beta * z + bias
        top = logits.max(axis=1, keepdims=True) if len(z) else np.zeros((0, 1))
        e = np.exp(logits - top)
        lse = top[:, 0] + np.log(e.sum(axis=1))
        p = e / e.sum(axis=1, keepdims=True)
        f = np.sum(lse) - np.sum(targets * logits)
        r = p - targets
        m = np.sum(p * z, axis=1, keepdims=True)
        g = np.concatenate([[np.sum(r * z)], r.sum(axis=0)])
        h = np.empty((len(g), len(g)))
        h[0, 0] = np.sum(p * z * z) - np.sum(m * m)
        h[0, 1:] = h[1:, 0] = np.sum(p * (z - m), axis=0)
        h[1:, 1:] = np.diag(p.sum(axis=0)) - p.T @ p
        return np.array([f]), g[None], h[None]

    return sums


def gauge(theta):
    """(sum_k bias_k)^2 / 2: softmax ignores a constant added to every bias; this term
    is 0 at the fit and picks the centred representative (a non-singular Hessian)."""
    total = theta[0, 1:].sum()
    g = np.concatenate([[0.0], np.full(theta.shape[1] - 1, total)])
    h = np.zeros((theta.shape[1],) * 2)
    h[1:, 1:] = 1.0
    return np.array([total**2 / 2]), g[None], h[None]
