"""cs231n assignment 2's layers as students write them (layers.py: *_forward returns
(out, cache), *_backward(dout, cache)), with the bugs students make, for the layer-level
check's tests."""

import numpy as np


def affine_forward(x, w, b):
    return x.reshape(x.shape[0], -1) @ w + b, (x, w, b)


def affine_backward(dout, cache, bug=None):
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    if bug == "db_not_summed":
        db = dout[0]
    if bug == "dx_not_reshaped":
        dx = dout @ w.T            # (N, D) instead of x's shape
    return dx, dw, db


def relu_backward(dout, x, bug=None):
    return dout * ((x >= 0) if bug == "ge" else (x > 0))


def softmax_loss(x, y, bug=None):
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    N = x.shape[0]
    loss = -log_probs[np.arange(N), y].mean()
    dx = np.exp(log_probs)
    dx[np.arange(N), y] -= 1
    if bug != "not_divided":
        dx /= N
    return loss, dx


def svm_loss(x, y, bug=None):
    N = x.shape[0]
    correct = x[np.arange(N), y][:, None]
    margins = np.maximum(0, x - correct + 1.0)
    # the bug: the positive margins counted before the correct class's is zeroed
    positive = (margins > 0).sum(axis=1)
    margins[np.arange(N), y] = 0
    if bug != "counts_correct":
        positive = (margins > 0).sum(axis=1)
    loss = margins.sum() / N
    dx = (margins > 0).astype(float)
    dx[np.arange(N), y] -= positive
    return loss, dx / N


def dropout_backward(dout, mask, p, bug=None):
    # cs231n keeps the mask divided by p: mask = (rand < p) / p
    return dout * (mask * p if bug == "no_p" else mask)


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc ** 2).mean(axis=0)
    std = np.sqrt(var + eps)
    xhat = xc / std
    return gamma * xhat + beta, (x, xhat, gamma, xc, std, var, eps)


def batchnorm_backward(dout, cache, bug=None):
    """The staged backward of the computational graph, as the notebook derives it."""
    x, xhat, gamma, xc, std, var, eps = cache
    N = x.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * (x if bug == "dgamma_from_x" else xhat)).sum(axis=0)
    dxhat = dout * gamma
    dxc = dxhat / std
    dstd = -(dxhat * xc / std ** 2).sum(axis=0)
    dvar = 0.5 * dstd / std
    dxc += 2 * xc * dvar / N
    if bug == "no_mean_terms":
        return dxc, dgamma, dbeta
    dmu = -dxc.sum(axis=0)
    dx = dxc + dmu / N
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    """The one-line simplified form (written differently from the staged one)."""
    x, xhat, gamma, xc, std, var, eps = cache
    N = x.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dx = gamma / (N * std) * (N * dout - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


def layernorm_forward(x, gamma, beta, eps=1e-5):
    out, cache = batchnorm_forward(x.T, np.ones(x.shape[0]), np.zeros(x.shape[0]), eps)
    xhat = out.T
    return gamma * xhat + beta, (cache, xhat, gamma)


def layernorm_backward(dout, cache, bug=None):
    bn_cache, xhat, gamma = cache
    dgamma = (dout * xhat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    dxhat = dout * gamma
    if bug == "wrong_axis":
        # normalised over the batch instead of the features
        x = bn_cache[0].T
        _, over_batch = batchnorm_forward(x, np.ones(x.shape[1]), np.zeros(x.shape[1]),
                                          bn_cache[-1])
        dx, _, _ = batchnorm_backward(dxhat, over_batch)
        return dx, dgamma, dbeta
    dxT, _, _ = batchnorm_backward(dxhat.T, bn_cache)
    return dxT.T, dgamma, dbeta
