"""Independent float64 NumPy references for the losses (written from the papers' formulas)."""

import numpy as np

EPS = 1e-7


def flsd53_gamma(p_t):
    """Mukhoti et al.'s schedule as their code picks it: thresholds 0.2 and 0.5 in order."""
    p_t = np.asarray(p_t, np.float64)
    return np.select([p_t < 0.2, p_t < 0.5], [5.0, 3.0], default=3.0)


def _along(value, ndim, axis):
    value = np.asarray(value, np.float64)
    if value.ndim == 0:
        return value
    shape = [1] * ndim
    shape[axis] = -1
    return value.reshape(shape)


def softmax(x, axis):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def binary_focal(
    y,
    y_pred,
    *,
    gamma,
    alpha=0.25,
    balance=False,
    from_logits=False,
    label_smoothing=0.0,
    axis=-1,
    class_weight=None,
    gamma_schedule=None,
    poly_epsilon=0.0,
):
    """`gamma` may be an array of per-element exponents (a schedule frozen at a point)."""
    y = np.asarray(y, np.float64)
    t = y * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        # log p and log(1 - p) by logaddexp, so saturated logits stay exact in float64.
        x = np.asarray(y_pred, np.float64)
        log_p, log_1mp = -np.logaddexp(0, -x), -np.logaddexp(0, x)
    else:
        p = np.clip(np.asarray(y_pred, np.float64), EPS, 1 - EPS)
        log_p, log_1mp = np.log(p), np.log(1 - p)
    bce = -(t * log_p + (1 - t) * log_1mp)
    with np.errstate(divide="ignore"):
        log_1m_pt = np.logaddexp(np.log(t) + log_1mp, np.log(1 - t) + log_p)
    if gamma_schedule == "flsd53":
        gamma = flsd53_gamma(1 - np.exp(log_1m_pt))
    one_minus_pt = np.exp(log_1m_pt)
    loss = one_minus_pt**gamma * (bce + poly_epsilon * one_minus_pt)
    if balance:
        a = _along(alpha, y.ndim, axis)
        loss *= t * a + (1 - t) * (1 - a)
    if class_weight is not None:
        w = np.asarray(class_weight, np.float64)
        if w.ndim == 2:
            shape = [1] * y.ndim
            shape[axis] = -1
            w_neg, w_pos = w[0].reshape(shape), w[1].reshape(shape)
        else:
            w_neg, w_pos = w
        loss *= y * w_pos + (1 - y) * w_neg
    return loss.mean(axis=axis)


def categorical_focal(
    y,
    y_pred,
    *,
    gamma,
    alpha=0.25,
    from_logits=False,
    label_smoothing=0.0,
    axis=-1,
    class_weight=None,
    gamma_schedule=None,
    poly_epsilon=0.0,
):
    y = np.asarray(y, np.float64)
    t = y * (1 - label_smoothing) + label_smoothing / y.shape[axis]
    if from_logits:
        x = np.moveaxis(np.asarray(y_pred, np.float64), axis, -1)
        log_p = x - np.logaddexp.reduce(x, axis=-1, keepdims=True)
        # log(1 - p_c) = logsumexp over the other classes - logsumexp over all.
        others = np.stack(
            [np.logaddexp.reduce(np.delete(x, c, axis=-1), axis=-1) for c in range(x.shape[-1])],
            axis=-1,
        )
        log_1mp = others - np.logaddexp.reduce(x, axis=-1, keepdims=True)
        log_p, log_1mp = np.moveaxis(log_p, -1, axis), np.moveaxis(log_1mp, -1, axis)
    else:
        p = np.asarray(y_pred, np.float64)
        p = np.clip(p / p.sum(axis=axis, keepdims=True), EPS, 1 - EPS)
        log_p, log_1mp = np.log(p), np.log(1 - p)
    shape = [1] * y.ndim
    shape[axis] = -1
    a = np.asarray(alpha, np.float64)
    a = a.reshape(shape) if a.ndim else a
    w = 1.0 if class_weight is None else np.asarray(class_weight, np.float64).reshape(shape)
    if gamma_schedule == "flsd53":
        gamma = flsd53_gamma(np.exp(log_p))
    one_minus_p = np.exp(log_1mp)
    return (a * w * t * one_minus_p**gamma * (-log_p + poly_epsilon * one_minus_p)).sum(axis=axis)


def sparse_focal(
    labels,
    y_pred,
    *,
    gamma,
    alpha=0.25,
    from_logits=False,
    class_weight=None,
    ignore_class=None,
    gamma_schedule=None,
    poly_epsilon=0.0,
):
    """Loops over examples: a second, differently written reference (class axis last)."""
    labels = np.asarray(labels)
    y_pred = np.asarray(y_pred, np.float64)
    flat_pred = y_pred.reshape(-1, y_pred.shape[-1])
    out = np.zeros(labels.size)
    for i, label in enumerate(labels.reshape(-1)):
        if ignore_class is not None and label == ignore_class:
            continue
        if from_logits:
            p = softmax(flat_pred[i], 0)[label]
        else:
            p = np.clip(flat_pred[i][label] / flat_pred[i].sum(), EPS, 1 - EPS)
        a = alpha if np.ndim(alpha) == 0 else alpha[label]
        w = 1.0 if class_weight is None else class_weight[label]
        g = flsd53_gamma(p) if gamma_schedule == "flsd53" else gamma
        out[i] = a * w * (1 - p) ** g * (-np.log(p) + poly_epsilon * (1 - p))
    return out.reshape(labels.shape)


def asymmetric(
    y, y_pred, *, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, from_logits=False, axis=-1, weights=None
):
    """Ridnik et al.'s l = -[y (1-p)^g+ log p + (1-y) p_m^g- log(1-p_m)], mean over axis.

    `weights`: a (w_pos, w_neg) pair of arrays to use in place of the focusing weights
    (frozen at a point, for the detached gradient).
    """
    y = np.asarray(y, np.float64)
    if from_logits:
        x = np.asarray(y_pred, np.float64)
        log_p, log_1mp = -np.logaddexp(0, -x), -np.logaddexp(0, x)
        p = np.exp(log_p)
    else:
        p = np.clip(np.asarray(y_pred, np.float64), EPS, 1 - EPS)
        log_p, log_1mp = np.log(p), np.log(1 - p)
    p_m = np.maximum(p - clip, 0.0)
    w_pos = np.exp(gamma_pos * log_1mp)
    if clip == 0:
        w_neg, log_1m_pm = np.exp(gamma_neg * log_p), log_1mp
    else:
        with np.errstate(divide="ignore"):
            w_neg = np.where(p_m > 0, p_m**gamma_neg, 0.0)
        # 1 - p_m = (1 - p) + clip where p > clip: in log space, finite where 1 - p underflows.
        log_1m_pm = np.where(p_m > 0, np.logaddexp(log_1mp, np.log(clip)), 0.0)
    if weights is not None:
        w_pos, w_neg = weights
    loss = -(y * w_pos * log_p + (1 - y) * w_neg * log_1m_pm)
    return loss.mean(axis=axis), (w_pos, w_neg)


def asymmetric_gradient(
    y, logits, *, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, axis=-1, detach_focusing=False
):
    """d/dx of `asymmetric` (from logits), written from the derivative of each term.

    dL+/dx = -(1-p)^g+ [(1-p) + g+ p (-log p)]; for clip 0, dL-/dx = p^g- [p + g- (1-p)
    (-log(1-p))]; else, where p > clip, dL-/dx = p (1-p) [p_m^g- / q + g- p_m^(g- - 1)
    (-log q)] with q = 1 - p_m, and 0 elsewhere. Detached: the g terms drop.
    """
    y = np.asarray(y, np.float64)
    x = np.asarray(logits, np.float64)
    log_p, log_1mp = -np.logaddexp(0, -x), -np.logaddexp(0, x)
    p, one_minus_p = np.exp(log_p), np.exp(log_1mp)
    g_pos = 0.0 if detach_focusing else gamma_pos
    g_neg = 0.0 if detach_focusing else gamma_neg
    d_pos = -np.exp(gamma_pos * log_1mp) * (one_minus_p - g_pos * p * log_p)
    if clip == 0:
        d_neg = np.exp(gamma_neg * log_p) * (p - g_neg * one_minus_p * log_1mp)
    else:
        active = p > clip
        p_m = np.where(active, p - clip, 1.0)
        log_q = np.logaddexp(log_1mp, np.log(clip))  # q = (1 - p) + clip
        # p (1 - p) in log space: 1 - p underflows long before (1 - p) / q does.
        log_slope = log_p + log_1mp
        d_neg = np.exp(gamma_neg * np.log(p_m) + log_slope - log_q)
        if g_neg:
            d_neg += g_neg * np.exp((gamma_neg - 1) * np.log(p_m) + log_slope) * -log_q
        d_neg = np.where(active, d_neg, 0.0)
    grad = y * d_pos + (1 - y) * d_neg
    return grad / grad.shape[axis]


def timm_asymmetric_multilabel(y, logits, *, gamma_neg=4.0, gamma_pos=1.0, clip=0.05, eps=1e-8):
    """timm's `AsymmetricLossMultiLabel.forward` (hard labels), step by step in float64."""
    y = np.asarray(y, np.float64)
    xs_pos = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
    xs_neg = 1 - xs_pos
    if clip is not None and clip > 0:
        xs_neg = np.minimum(xs_neg + clip, 1)
    loss = y * np.log(np.maximum(xs_pos, eps)) + (1 - y) * np.log(np.maximum(xs_neg, eps))
    if gamma_neg > 0 or gamma_pos > 0:
        pt = xs_pos * y + xs_neg * (1 - y)
        loss = loss * np.power(1 - pt, gamma_pos * y + gamma_neg * (1 - y))
    return -loss.sum()


def logit_adjusted(labels, logits, *, log_prior, tau=1.0, ignore_class=None):
    """-log softmax(x + tau log pi)_y per example (class axis last), 0 where ignored."""
    labels = np.asarray(labels)
    z = np.asarray(logits, np.float64) + tau * np.asarray(log_prior, np.float64)
    log_softmax = z - np.logaddexp.reduce(z, axis=-1, keepdims=True)
    safe = np.where(labels == ignore_class, 0, labels) if ignore_class is not None else labels
    loss = -np.take_along_axis(log_softmax, safe[..., None], axis=-1)[..., 0]
    return np.where(labels == ignore_class, 0.0, loss) if ignore_class is not None else loss


def logit_adjusted_binary(y, logits, *, positive_rate, tau=1.0, axis=-1):
    """bce(y, x + tau log(pi / (1 - pi))), mean over axis."""
    pi = _along(positive_rate, np.ndim(logits), axis)
    z = np.asarray(logits, np.float64) + tau * np.log(pi / (1 - pi))
    y = np.asarray(y, np.float64)
    return (y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z)).mean(axis=axis)
