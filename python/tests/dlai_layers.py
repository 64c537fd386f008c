"""deeplearning.ai Course 4's convolution and pooling as its notebook has students write
them (channels last: A_prev (m, n_H, n_W, n_C), W (f, f, n_C_prev, n_C), b (1, 1, 1, n_C),
hparameters {"stride", "pad"} or {"f", "stride"}), with the bug its own tests cannot see:
pool_backward without the stride (the notebook checks it at stride 1)."""

import numpy as np


def conv_forward(A_prev, W, b, hparameters):
    m, n_H_prev, n_W_prev, _ = A_prev.shape
    f, _, _, n_C = W.shape
    stride, pad = hparameters["stride"], hparameters["pad"]
    n_H = (n_H_prev - f + 2 * pad) // stride + 1
    n_W = (n_W_prev - f + 2 * pad) // stride + 1
    Z = np.zeros((m, n_H, n_W, n_C))
    A_prev_pad = np.pad(A_prev, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    for i in range(m):
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    vs, hs = h * stride, w * stride
                    a_slice = A_prev_pad[i, vs:vs + f, hs:hs + f, :]
                    Z[i, h, w, c] = np.sum(a_slice * W[:, :, :, c]) + float(b[0, 0, 0, c])
    return Z


def conv_backward(dZ, A_prev, W, b, hparameters):
    f = W.shape[0]
    stride, pad = hparameters["stride"], hparameters["pad"]
    m, n_H, n_W, n_C = dZ.shape
    dA_prev, dW, db = np.zeros(A_prev.shape), np.zeros(W.shape), np.zeros(b.shape)
    A_prev_pad = np.pad(A_prev, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dA_prev_pad = np.pad(dA_prev, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    for i in range(m):
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    vs, hs = h * stride, w * stride
                    a_slice = A_prev_pad[i, vs:vs + f, hs:hs + f, :]
                    dA_prev_pad[i, vs:vs + f, hs:hs + f, :] += W[:, :, :, c] * dZ[i, h, w, c]
                    dW[:, :, :, c] += a_slice * dZ[i, h, w, c]
                    db[:, :, :, c] += dZ[i, h, w, c]
    dA_prev = dA_prev_pad[:, pad:dA_prev_pad.shape[1] - pad, pad:dA_prev_pad.shape[2] - pad, :]
    return dA_prev, dW, db


def pool_forward(A_prev, hparameters, mode="max"):
    m, n_H_prev, n_W_prev, n_C = A_prev.shape
    f, stride = hparameters["f"], hparameters["stride"]
    n_H, n_W = 1 + (n_H_prev - f) // stride, 1 + (n_W_prev - f) // stride
    A = np.zeros((m, n_H, n_W, n_C))
    for i in range(m):
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    vs, hs = h * stride, w * stride
                    a_slice = A_prev[i, vs:vs + f, hs:hs + f, c]
                    A[i, h, w, c] = np.max(a_slice) if mode == "max" else np.mean(a_slice)
    return A


def pool_backward(dA, A_prev, hparameters, mode="max", bug=None):
    f, stride = hparameters["f"], hparameters["stride"]
    if bug == "no_stride":
        stride = 1
    m, n_H, n_W, n_C = dA.shape
    dA_prev = np.zeros(A_prev.shape)
    for i in range(m):
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    vs, hs = h * stride, w * stride
                    if mode == "max":
                        a_slice = A_prev[i, vs:vs + f, hs:hs + f, c]
                        mask = a_slice == np.max(a_slice)
                        dA_prev[i, vs:vs + f, hs:hs + f, c] += mask * dA[i, h, w, c]
                    else:
                        dA_prev[i, vs:vs + f, hs:hs + f, c] += dA[i, h, w, c] / (f * f)
    return dA_prev


def rnn_cell_forward(xt, a_prev, parameters):
    Wax, Waa, ba = parameters["Wax"], parameters["Waa"], parameters["ba"]
    return np.tanh(Waa @ a_prev + Wax @ xt + ba)


def rnn_cell_backward(da_next, xt, a_prev, parameters, bug=None):
    """The notebook's rnn_cell_backward; the bug: the tanh derivative left out."""
    Wax, Waa = parameters["Wax"], parameters["Waa"]
    a_next = rnn_cell_forward(xt, a_prev, parameters)
    dtanh = da_next if bug == "no_tanh_derivative" else (1 - a_next ** 2) * da_next
    return {"dxt": Wax.T @ dtanh, "da_prev": Waa.T @ dtanh, "dWax": dtanh @ xt.T,
            "dWaa": dtanh @ a_prev.T, "dba": dtanh.sum(axis=1, keepdims=True)}


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def lstm_cell_forward(xt, a_prev, c_prev, parameters):
    """The notebook's lstm_cell_forward (without its yt_pred), over [a_prev; xt]."""
    p = parameters
    concat = np.concatenate((a_prev, xt), axis=0)
    ft = sigmoid(p["Wf"] @ concat + p["bf"])
    it = sigmoid(p["Wi"] @ concat + p["bi"])
    cct = np.tanh(p["Wc"] @ concat + p["bc"])
    c_next = ft * c_prev + it * cct
    ot = sigmoid(p["Wo"] @ concat + p["bo"])
    a_next = ot * np.tanh(c_next)
    return a_next, c_next, (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)


def lstm_cell_backward(da_next, dc_next, cache, bug=None):
    """The notebook's lstm_cell_backward; the bug: dc_prev without the path through
    a_next (only dc_next·ft)."""
    a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, p = cache
    n_a = a_next.shape[0]
    through_a = ot * (1 - np.tanh(c_next) ** 2) * da_next
    dot = da_next * np.tanh(c_next) * ot * (1 - ot)
    dcct = (dc_next * it + through_a * it) * (1 - cct ** 2)
    dit = (dc_next * cct + through_a * cct) * it * (1 - it)
    dft = (dc_next * c_prev + through_a * c_prev) * ft * (1 - ft)
    concat = np.concatenate((a_prev, xt), axis=0)
    grads = {"dWf": dft @ concat.T, "dWi": dit @ concat.T, "dWc": dcct @ concat.T,
             "dWo": dot @ concat.T, "dbf": dft.sum(axis=1, keepdims=True),
             "dbi": dit.sum(axis=1, keepdims=True), "dbc": dcct.sum(axis=1, keepdims=True),
             "dbo": dot.sum(axis=1, keepdims=True)}
    gates = [(p["Wf"], dft), (p["Wi"], dit), (p["Wc"], dcct), (p["Wo"], dot)]
    grads["da_prev"] = sum(w[:, :n_a].T @ d for w, d in gates)
    grads["dxt"] = sum(w[:, n_a:].T @ d for w, d in gates)
    grads["dc_prev"] = dc_next * ft if bug == "dc_prev_without_a_next" else dc_next * ft + through_a * ft
    return grads
