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


def conv_backward_naive(dout, x, w, b, stride, pad, bug=None):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    Ho, Wo = dout.shape[2], dout.shape[3]
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    s = 1 if bug == "ignores_stride" else stride
                    window = xp[n, :, i * s:i * s + HH, j * s:j * s + WW]
                    dw[f] += window * dout[n, f, i, j]
                    dxp[n, :, i * s:i * s + HH, j * s:j * s + WW] += w[f] * dout[n, f, i, j]
    dx = dxp[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


def max_pool_backward_naive(dout, x, ph, pw, stride, bug=None):
    dx = np.zeros_like(x)
    N, C, Ho, Wo = dout.shape
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    s = 1 if bug == "ignores_stride" else stride
                    window = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
                    mask = window == window.max()
                    if bug == "no_accumulate":
                        dx[n, c, i * s:i * s + ph, j * s:j * s + pw] = mask * dout[n, c, i, j]
                    else:
                        dx[n, c, i * s:i * s + ph, j * s:j * s + pw] += mask * dout[n, c, i, j]
    return dx


def spatial_batchnorm_backward(dout, x, gamma, beta, eps=1e-5):
    """cs231n's way: reshape to (N·H·W, C) and reuse the vanilla batch norm."""
    N, C, H, W = x.shape
    flat = x.transpose(0, 2, 3, 1).reshape(-1, C)
    _, cache = batchnorm_forward(flat, gamma, beta, eps)
    dx, dgamma, dbeta = batchnorm_backward_alt(dout.transpose(0, 2, 3, 1).reshape(-1, C), cache)
    return dx.reshape(N, H, W, C).transpose(0, 3, 1, 2), dgamma, dbeta


def spatial_groupnorm_backward(dout, x, gamma, beta, G, eps=1e-5, bug=None):
    N, C, H, W = x.shape
    xg = x.reshape(N, G, -1)
    mu = xg.mean(axis=2, keepdims=True)
    var = xg.var(axis=2, keepdims=True)
    std = np.sqrt(var + eps)
    xhat = ((xg - mu) / std).reshape(N, C, H, W)
    dbeta = dout.sum(axis=(0, 2, 3), keepdims=True)
    dgamma = (dout * xhat).sum(axis=(0, 2, 3), keepdims=True)
    dxhat = (dout * gamma).reshape(N, G, -1)
    xh = xhat.reshape(N, G, -1)
    K = xh.shape[2]
    dx = (K * dxhat - dxhat.sum(axis=2, keepdims=True)
          - xh * (dxhat * xh).sum(axis=2, keepdims=True)) / (K * std)
    if bug == "one_group":
        dx = dxhat / std
    return dx.reshape(N, C, H, W), dgamma, dbeta


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o, g = (_sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), _sigmoid(a[:, 2 * H:3 * H]),
                  np.tanh(a[:, 3 * H:]))
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache, bug=None):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    if bug == "i_f_swapped":
        i, f = f, i
    tc = np.tanh(next_c)
    do = dnext_h * tc
    dc = dnext_c + dnext_h * o * (1 - tc ** 2)
    di, df, dg, dprev_c = dc * g, dc * prev_c, dc * i, dc * f
    da = np.hstack([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)])
    return (da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0))


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    h, prev = np.zeros((N, T, h0.shape[1])), h0
    for t in range(T):
        prev = np.tanh(x[:, t] @ Wx + prev @ Wh + b)
        h[:, t] = prev
    return h


def rnn_backward(dh, x, h0, Wx, Wh, h, bug=None):
    """cs231n's rnn_backward over rnn_step_backward; the bug: dWh taken from the last
    step only instead of accumulated over time."""
    N, T, D = x.shape
    dx, dWx, dWh, db = np.zeros_like(x), np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[0])
    dprev = np.zeros_like(h0)
    for t in reversed(range(T)):
        prev = h0 if t == 0 else h[:, t - 1]
        da = (dh[:, t] + dprev) * (1 - h[:, t] ** 2)
        dx[:, t] = da @ Wx.T
        dWx += x[:, t].T @ da
        step_dWh = prev.T @ da
        dWh = step_dWh if bug == "dWh_not_accumulated" else dWh + step_dWh
        db += da.sum(axis=0)
        dprev = da @ Wh.T
    return dx, dprev, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    h, caches = np.zeros((N, T, h0.shape[1])), []
    prev_h, prev_c = h0, np.zeros_like(h0)
    for t in range(T):
        prev_h, prev_c, cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(cache)
    return h, caches


def lstm_backward(dh, caches, bug=None):
    N, T, H = dh.shape
    D = caches[0][0].shape[1]
    dx, dWx, dWh, db = np.zeros((N, T, D)), 0, 0, 0
    dprev_h, dprev_c = np.zeros((N, H)), np.zeros((N, H))
    for t in reversed(range(T)):
        dx[:, t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t] + dprev_h, dprev_c, caches[t], bug)
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return dx, dprev_h, dWx, dWh, db
