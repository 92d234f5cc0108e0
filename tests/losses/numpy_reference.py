"""Independent float64 NumPy references for the focal losses (written from the formulas)."""

import numpy as np

EPS = 1e-7


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
):
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
    loss = (np.exp(log_1m_pt) ** gamma if gamma else 1.0) * bce
    if balance:
        loss *= t * alpha + (1 - t) * (1 - alpha)
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
    return (a * w * np.exp(gamma * log_1mp) * -t * log_p).sum(axis=axis)


def sparse_focal(
    labels, y_pred, *, gamma, alpha=0.25, from_logits=False, class_weight=None, ignore_class=None
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
        out[i] = a * w * (1 - p) ** gamma * -np.log(p)
    return out.reshape(labels.shape)
