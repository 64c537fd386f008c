"""Whole networks with normalisation layers, as cs231n's FullyConnectedNet builds them
(fc_net.py: affine → batchnorm/layernorm → ReLU [→ dropout] per hidden layer, affine →
softmax, 0.5·reg·ΣW²), written with the layers students write (cs231n_layers.py): a correct
backward passes, each planted bug fails on exactly the gradients it reaches."""

import numpy as np
import pytest

import gradcheck
from cs231n_layers import (affine_backward, affine_forward, batchnorm_backward,
                           batchnorm_backward_alt, batchnorm_forward, conv_backward_naive,
                           dropout_backward, layernorm_backward, layernorm_forward,
                           max_pool_backward_naive, relu_backward, softmax_loss)

rng = np.random.default_rng(2310)


def failing(report):
    return {t.name for t in report.tensors if t.verdict == "fail"}


def init(dims, norm):
    params = {}
    for l in range(1, len(dims)):
        params[f"W{l}"] = 5e-2 * rng.standard_normal((dims[l - 1], dims[l]))
        params[f"b{l}"] = np.zeros(dims[l])
        if norm and l < len(dims) - 1:
            params[f"gamma{l}"] = 1 + 0.1 * rng.standard_normal(dims[l])
            params[f"beta{l}"] = 0.1 * rng.standard_normal(dims[l])
    return params


def fc_net_loss(params, X, y, norm, reg=0.0, masks=None, p=None, bug=None, alt=False):
    """cs231n's FullyConnectedNet.loss, the backward as the assignment has it written."""
    L = sum(1 for k in params if k.startswith("W"))
    caches, h = [], X
    for l in range(1, L):
        a, ca = affine_forward(h, params[f"W{l}"], params[f"b{l}"])
        forward = batchnorm_forward if norm == "batchnorm" else layernorm_forward
        n, cn = forward(a, params[f"gamma{l}"], params[f"beta{l}"])
        r = np.maximum(0, n)
        if masks is not None:
            r = r * masks[l - 1]          # cs231n's mask is (rand < p) / p
        caches.append((ca, cn, n))
        h = r
    scores, cl = affine_forward(h, params[f"W{L}"], params[f"b{L}"])
    loss, ds = softmax_loss(scores, y)
    loss += 0.5 * reg * sum(np.sum(params[f"W{l}"] ** 2) for l in range(1, L + 1))
    grads = {}
    dh, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(ds, cl)
    grads[f"W{L}"] += reg * params[f"W{L}"]
    for l in range(L - 1, 0, -1):
        ca, cn, n = caches[l - 1]
        if masks is not None:
            dh = dropout_backward(dh, masks[l - 1], p, bug if bug == "no_p" and l == 1 else None)
        dn = relu_backward(dh, n)
        if norm == "batchnorm":
            if alt:
                da, dg, db = batchnorm_backward_alt(dn, cn)
            else:
                da, dg, db = batchnorm_backward(dn, cn, bug if l == 1 else None)
        else:
            da, dg, db = layernorm_backward(dn, cn, bug if l == 1 else None)
        grads[f"gamma{l}"], grads[f"beta{l}"] = dg, db
        dh, grads[f"W{l}"], grads[f"b{l}"] = affine_backward(da, ca)
        if not (bug == "no_reg" and l == 2):
            grads[f"W{l}"] += reg * params[f"W{l}"]
    return loss, grads


@pytest.mark.parametrize("norm", ["batchnorm", "layernorm"])
def test_the_notebooks_net_passes_and_its_bugs_fail_where_they_reach(norm):
    N, D, H1, H2, C, reg = 10, 15, 20, 30, 10, 3.14
    X, y = rng.standard_normal((N, D)), rng.integers(0, C, N)
    params = init([D, H1, H2, C], norm)
    _, grads = fc_net_loss(params, X, y, norm, reg)
    report = gradcheck.check(params, grads, X, y=y, loss="softmax", weight_l2=reg / 2,
                             normalization=norm)
    assert report.passed, str(report)
    assert {t.name for t in report.tensors} == set(params)

    _, bad = fc_net_loss(params, X, y, norm, reg, bug="no_reg")
    report = gradcheck.check(params, bad, X, y=y, loss="softmax", weight_l2=reg / 2,
                             normalization=norm)
    assert failing(report) == {"W2"}, str(report)

    bug = "dgamma_from_x" if norm == "batchnorm" else "wrong_axis"
    _, bad = fc_net_loss(params, X, y, norm, reg, bug=bug)
    report = gradcheck.check(params, bad, X, y=y, loss="softmax", weight_l2=reg / 2,
                             normalization=norm)
    # dgamma from x reaches gamma1 only; the wrong axis reaches dx, so W1 (and b1)
    expected = {"gamma1"} if norm == "batchnorm" else {"W1", "b1"}
    assert failing(report) == expected, str(report)


def test_batchnorm_net_missing_mean_terms_fails_below_the_layer_and_b1_is_exactly_zero():
    N, D, H, C = 8, 6, 7, 4
    X, y = rng.standard_normal((N, D)), rng.integers(0, C, N)
    params = init([D, H, H, C], "batchnorm")
    _, grads = fc_net_loss(params, X, y, "batchnorm", alt=True)   # the one-line form
    report = gradcheck.check(params, grads, X, y=y, loss="softmax", normalization="batchnorm")
    assert report.passed, str(report)
    # the cost does not depend on a bias a batch norm follows: said, and judged against 0
    assert any("does not depend on b1" in w for w in report.warnings), report.warnings
    _, bad = fc_net_loss(params, X, y, "batchnorm", bug="no_mean_terms")
    report = gradcheck.check(params, bad, X, y=y, loss="softmax", normalization="batchnorm")
    assert failing(report) == {"W1", "b1"}, str(report)
    b1 = next(t for t in report.tensors if t.name == "b1")
    assert "gradient is 0" in b1.diagnosis


def test_dropout_masks_as_cs231n_saves_them():
    N, D, H, C, p = 12, 5, 9, 3, 0.6
    X, y = rng.standard_normal((N, D)), rng.integers(0, C, N)
    params = init([D, H, H, C], "batchnorm")
    masks = [(rng.random((N, H)) < p) / p for _ in range(2)]
    _, grads = fc_net_loss(params, X, y, "batchnorm", masks=masks, p=p)
    report = gradcheck.check(params, grads, X, y=y, loss="softmax", keep_prob=p,
                             masks=masks, normalization="batchnorm")
    assert report.passed, str(report)
    _, bad = fc_net_loss(params, X, y, "batchnorm", masks=masks, p=p, bug="no_p")
    report = gradcheck.check(params, bad, X, y=y, loss="softmax", keep_prob=p,
                             masks=masks, normalization="batchnorm")
    assert failing(report) >= {"W1", "gamma1", "beta1"}, str(report)
    assert not failing(report) & {"W2", "W3", "gamma2"}, str(report)


def test_normalisation_parameters_without_the_setting_name_it(tmp_path):
    N, D, H, C = 6, 4, 5, 3
    X, y = rng.standard_normal((N, D)), rng.integers(0, C, N)
    params = init([D, H, C], "batchnorm")
    _, grads = fc_net_loss(params, X, y, "batchnorm")
    with pytest.raises(gradcheck.GradcheckError, match="normalization=batchnorm"):
        gradcheck.check(params, grads, X, y=y, loss="softmax")
    # the npz route, two files as cs231n keeps them, the setting in the file
    net, g = tmp_path / "net.npz", tmp_path / "grads.npz"
    np.savez(net, X=X, y=y, **params, gradcheck="loss=softmax normalization=batchnorm")
    np.savez(g, **grads)
    report = gradcheck.check_npz(net, grads=g)
    assert report.passed, str(report)
    # float32 gradients are refused, not misjudged
    with pytest.raises(gradcheck.GradcheckError, match="float32"):
        gradcheck.check(params, {k: v.astype(np.float32) for k, v in grads.items()}, X,
                        y=y, loss="softmax", normalization="batchnorm")


def conv_forward(x, w, b, stride, pad):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho, Wo = 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride
    out = np.zeros((N, F, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            window = xp[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def pool_forward(x, s):
    N, C, H, W = x.shape
    return x.reshape(N, C, H // s, s, W // s, s).max(axis=(3, 5))


def three_layer_convnet_loss(params, X, y, reg, bug=None):
    """cs231n's ThreeLayerConvNet.loss: conv - relu - 2x2 max pool - affine - relu -
    affine - softmax, pad (filter_size - 1) // 2, stride 1, 0.5·reg·ΣW²."""
    W1, b1, W2, b2, W3, b3 = (params[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))
    pad = (W1.shape[2] - 1) // 2
    c = conv_forward(X, W1, b1, 1, pad)
    r = np.maximum(0, c)
    p = pool_forward(r, 2)
    a, ca = affine_forward(p, W2, b2)
    h = np.maximum(0, a)
    scores, cs = affine_forward(h, W3, b3)
    loss, ds = softmax_loss(scores, y)
    loss += 0.5 * reg * sum(np.sum(params[k] ** 2) for k in ("W1", "W2", "W3"))
    g = {}
    dh, g["W3"], g["b3"] = affine_backward(ds, cs)
    da = relu_backward(dh, a)
    dp, g["W2"], g["b2"] = affine_backward(da, ca)
    dr = max_pool_backward_naive(dp, r, 2, 2, 2, "ignores_stride" if bug == "pool_stride" else None)
    dc = relu_backward(dr, c)
    _, g["W1"], g["b1"] = conv_backward_naive(dc, X, W1, b1, 1, pad)
    if bug == "db_axes":
        g["b1"] = dc.sum(axis=(0, 2, 3)) * 0 + dc.sum(axis=(0, 1, 2)).mean()
    for k in ("W1", "W2", "W3"):
        g[k] = g[k] + reg * params[k]
    return loss, g


CONVNET = [("conv", {"stride": 1, "pad": 1}), "relu",
           ("max_pool", {"pool_height": 2, "pool_width": 2, "stride": 2}),
           "affine", "relu", "affine"]


def test_three_layer_convnet_at_the_notebooks_size_passes_and_its_bugs_fail():
    N, C, H, W, F, hidden, classes, reg = 2, 3, 16, 16, 3, 7, 10, 0.01
    X, y = rng.standard_normal((N, C, H, W)), rng.integers(0, classes, N)
    params = {"W1": 1e-1 * rng.standard_normal((F, C, 3, 3)), "b1": 0.1 * rng.standard_normal(F),
              "W2": 1e-1 * rng.standard_normal((F * H * W // 4, hidden)),
              "b2": 0.1 * rng.standard_normal(hidden),
              "W3": 1e-1 * rng.standard_normal((hidden, classes)),
              "b3": 0.1 * rng.standard_normal(classes)}
    _, grads = three_layer_convnet_loss(params, X, y, reg)
    report = gradcheck.check(params, grads, X, y=y, loss="softmax", weight_l2=reg / 2,
                             layers=CONVNET)
    assert report.verdict != "fail", str(report)
    assert report.passed, str(report)
    for bug, blamed in (("pool_stride", {"W1", "b1"}), ("db_axes", {"b1"})):
        _, bad = three_layer_convnet_loss(params, X, y, reg, bug)
        report = gradcheck.check(params, bad, X, y=y, loss="softmax", weight_l2=reg / 2,
                                 layers=CONVNET)
        assert failing(report) == blamed, (bug, str(report))


def test_a_conv_net_with_spatial_batchnorm_and_its_conv_bias_exactly_zero():
    from cs231n_layers import spatial_batchnorm_backward
    N, C, H, W, F, classes = 4, 2, 6, 6, 3, 5
    X, y = rng.standard_normal((N, C, H, W)), rng.integers(0, classes, N)
    params = {"W1": 0.3 * rng.standard_normal((F, C, 3, 3)), "b1": 0.1 * rng.standard_normal(F),
              "gamma1": 1 + 0.1 * rng.standard_normal(F), "beta1": 0.1 * rng.standard_normal(F),
              "W2": 0.3 * rng.standard_normal((F * 9, classes)),
              "b2": 0.1 * rng.standard_normal(classes)}
    c = conv_forward(X, params["W1"], params["b1"], 1, 1)
    flat = c.transpose(0, 2, 3, 1).reshape(-1, F)
    out, _ = batchnorm_forward(flat, params["gamma1"], params["beta1"])
    sbn = out.reshape(N, H, W, F).transpose(0, 3, 1, 2)
    r = np.maximum(0, sbn)
    p = pool_forward(r, 2)
    scores, cs = affine_forward(p, params["W2"], params["b2"])
    _, ds = softmax_loss(scores, y)
    g = {}
    dp, g["W2"], g["b2"] = affine_backward(ds, cs)
    dr = max_pool_backward_naive(dp, r, 2, 2, 2)
    dsbn = relu_backward(dr, sbn)
    dc, g["gamma1"], g["beta1"] = spatial_batchnorm_backward(dsbn, c, params["gamma1"],
                                                             params["beta1"])
    _, g["W1"], g["b1"] = conv_backward_naive(dc, X, params["W1"], params["b1"], 1, 1)
    layers = [("conv", {"stride": 1, "pad": 1}), "spatial_batchnorm", "relu",
              ("max_pool", {"pool_height": 2, "pool_width": 2, "stride": 2}), "affine"]
    report = gradcheck.check(params, g, X, y=y, loss="softmax", layers=layers)
    assert report.passed, str(report)
    assert any("does not depend on b1" in w for w in report.warnings), report.warnings
    bad = dict(g, gamma1=g["gamma1"] * 1.001)
    report = gradcheck.check(params, bad, X, y=y, loss="softmax", layers=layers)
    assert failing(report) == {"gamma1"}, str(report)
