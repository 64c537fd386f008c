"""The layer-level check as cs231n's notebooks use it: each layer's backward written as
students write it (cs231n_layers.py), the bugs they make failing on exactly their
gradient, the notebooks' shapes and expected errors, float32, and the forms people pass
(the tuple a backward returns, cs231n's param dicts)."""

import numpy as np
import pytest

import gradcheck
from cs231n_layers import (affine_backward, batchnorm_backward, batchnorm_backward_alt,
                           batchnorm_forward, dropout_backward, layernorm_backward,
                           layernorm_forward, relu_backward, softmax_loss, svm_loss)

rng = np.random.default_rng(231)


def failing(report):
    return {t.name for t in report.tensors if t.verdict == "fail"}


def test_affine_as_the_notebook_draws_it_and_its_bugs():
    x = rng.standard_normal((10, 2, 3))
    w = rng.standard_normal((6, 5))
    b = rng.standard_normal(5)
    dout = rng.standard_normal((10, 5))
    inputs = dict(x=x, w=w, b=b)
    report = gradcheck.check_layer("affine", inputs, affine_backward(dout, (x, w, b)), dout)
    assert report.passed, str(report)
    # linear in every input: the estimate is exact up to rounding
    assert max(t.difference for t in report.tensors) < 1e-9
    report = gradcheck.check_layer("affine", inputs,
                                   affine_backward(dout, (x, w, b), "db_not_summed"), dout)
    assert failing(report) == {"db"}, str(report)
    with pytest.raises(gradcheck.GradcheckError, match="dx has shape"):
        gradcheck.check_layer("affine", inputs,
                              affine_backward(dout, (x, w, b), "dx_not_reshaped"), dout)


def test_batchnorm_reproduces_the_notebooks_errors_and_catches_its_bugs():
    N, D = 4, 5
    x = 5 * rng.standard_normal((N, D)) + 12
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    dout = rng.standard_normal((N, D))
    _, cache = batchnorm_forward(x, gamma, beta)
    inputs = dict(x=x, gamma=gamma, beta=beta)
    bn_param = {"mode": "train", "eps": 1e-5}
    for backward in (batchnorm_backward, batchnorm_backward_alt):
        report = gradcheck.check_layer("batchnorm", inputs, backward(dout, cache), dout,
                                       bn_param=bn_param)
        assert report.passed, str(report)
        errors = {t["name"]: t["rel_error"] for t in report.to_dict()["tensors"]}
        assert errors["dx"] < 1e-7 and errors["dgamma"] < 1e-9, errors
    for bug, tensor in [("no_mean_terms", "dx"), ("dgamma_from_x", "dgamma")]:
        report = gradcheck.check_layer("batchnorm", inputs,
                                       batchnorm_backward(dout, cache, bug), dout,
                                       bn_param=bn_param)
        assert failing(report) == {tensor}, (bug, str(report))
    # dout = ones: the true dx is 0 — undecided or passed, never a false alarm
    ones = np.ones((N, D))
    report = gradcheck.check_layer("batchnorm", inputs, batchnorm_backward(ones, cache), ones)
    assert report.verdict != "fail", str(report)


def test_layernorm_over_the_wrong_axis_fails_dx():
    N, D = 4, 5
    x = 5 * rng.standard_normal((N, D)) + 12
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    dout = rng.standard_normal((N, D))
    _, cache = layernorm_forward(x, gamma, beta)
    inputs = dict(x=x, gamma=gamma, beta=beta)
    report = gradcheck.check_layer("layernorm", inputs, layernorm_backward(dout, cache), dout,
                                   ln_param={"eps": 1e-5})
    assert report.passed, str(report)
    report = gradcheck.check_layer("layernorm", inputs,
                                   layernorm_backward(dout, cache, "wrong_axis"), dout)
    assert failing(report) == {"dx"}, str(report)


def test_losses_and_their_bugs():
    x = rng.standard_normal((50, 10))
    y = rng.integers(0, 10, 50)
    report = gradcheck.check_layer("softmax_loss", dict(x=x, y=y), softmax_loss(x, y)[1])
    assert report.passed, str(report)
    report = gradcheck.check_layer("softmax_loss", dict(x=x, y=y),
                                   softmax_loss(x, y, "not_divided")[1])
    assert failing(report) == {"dx"} and "= m: missing 1/m?" in report.tensors[0].diagnosis
    report = gradcheck.check_layer("svm_loss", dict(x=x, y=y), svm_loss(x, y)[1])
    assert report.passed, str(report)
    report = gradcheck.check_layer("svm_loss", dict(x=x, y=y),
                                   svm_loss(x, y, "counts_correct")[1])
    assert failing(report) == {"dx"}, str(report)
    with pytest.raises(gradcheck.GradcheckError, match="takes no dout"):
        gradcheck.check_layer("svm_loss", dict(x=x, y=y), svm_loss(x, y)[1], np.ones(1))


def test_dropout_and_relu_as_cs231n_writes_them():
    x = rng.standard_normal((10, 10)) + 10
    p = 0.6
    mask = (rng.random((10, 10)) < p) / p        # cs231n keeps it divided by p
    dout = rng.standard_normal((10, 10))
    report = gradcheck.check_layer("dropout", dict(x=x, mask=mask),
                                   dropout_backward(dout, mask, p), dout,
                                   dropout_param={"mode": "train", "p": p, "seed": 123})
    assert report.passed, str(report)
    report = gradcheck.check_layer("dropout", dict(x=x, mask=mask),
                                   dropout_backward(dout, mask, p, "no_p"), dout, p=p)
    assert failing(report) == {"dx"} and "keep_prob" not in str(report.tensors[0].diagnosis)
    x = rng.standard_normal((10, 10))
    x[0, :3] = 0.0                                 # inputs exactly at the kink
    for bug in (None, "ge"):                       # x > 0 and x >= 0 are both correct
        report = gradcheck.check_layer("relu", dict(x=x), relu_backward(dout, x, bug), dout)
        assert report.passed, (bug, str(report))


def test_float32_layers_are_judged_as_float32():
    N, D = 16, 8
    x = (5 * rng.standard_normal((N, D)) + 12).astype(np.float32)
    gamma = rng.standard_normal(D).astype(np.float32)
    beta = rng.standard_normal(D).astype(np.float32)
    dout = rng.standard_normal((N, D)).astype(np.float32)
    _, cache = batchnorm_forward(x, gamma, beta)
    grads = batchnorm_backward(dout, cache)
    assert grads[0].dtype == np.float32
    report = gradcheck.check_layer("batchnorm", dict(x=x, gamma=gamma, beta=beta), grads, dout)
    assert report.verdict != "fail", str(report)
    assert report.to_dict()["grad_precision"] == "f32"
    bad = (grads[0], 1.01 * grads[1], grads[2])
    report = gradcheck.check_layer("batchnorm", dict(x=x, gamma=gamma, beta=beta), bad, dout)
    assert failing(report) == {"dgamma"}, str(report)


def test_what_people_pass_wrongly_is_named():
    x = rng.standard_normal((4, 5))
    with pytest.raises(gradcheck.GradcheckError, match="whose backward returns 3"):
        gradcheck.check_layer("batchnorm", dict(x=x, gamma=np.ones(5), beta=np.zeros(5)),
                              (x, x), x)
    with pytest.raises(gradcheck.GradcheckError, match="dout"):
        gradcheck.check_layer("relu", dict(x=x), x)
    with pytest.raises(gradcheck.GradcheckError, match="unknown op 'gru'"):
        gradcheck.check_layer("gru", dict(x=x), x, x)
    with pytest.raises(gradcheck.GradcheckError, match="train-mode"):
        gradcheck.check_layer("batchnorm", dict(x=x, gamma=np.ones(5), beta=np.zeros(5)),
                              (x, np.ones(5), np.ones(5)), x, bn_param={"mode": "test"})


def test_any_function_is_checked_with_honest_verdicts():
    x = rng.standard_normal((4, 3))
    w = rng.standard_normal((3, 2))
    dout = rng.standard_normal((4, 2))

    def f(x, w):
        return np.tanh(x @ w)

    dz = dout * (1 - f(x, w) ** 2)
    right = {"dx": dz @ w.T, "dw": x.T @ dz}
    report = gradcheck.check_function(f, dict(x=x, w=w), right, dout)
    assert report.passed, str(report)
    report = gradcheck.check_function(f, dict(x=x, w=w), dict(right, dw=1.001 * right["dw"]),
                                      dout)
    assert failing(report) == {"dw"}, str(report)
    # an array output needs its dout
    with pytest.raises(gradcheck.GradcheckError, match="give dout"):
        gradcheck.check_function(f, dict(x=x, w=w), right)
    # float32 gradients are judged as float32
    report = gradcheck.check_function(f, dict(x=x, w=w),
                                      {k: v.astype(np.float32) for k, v in right.items()}, dout)
    assert report.verdict == "pass" and report.to_dict()["grad_precision"] == "f32"


def test_a_functions_kinks_are_judged_by_its_one_sided_derivatives():
    x = np.array([0.0, 1.0, -2.0, 0.0])

    def f(x):
        return np.abs(x).sum()

    report = gradcheck.check_function(f, dict(x=x), {"dx": np.sign(x)})
    assert report.passed and report.to_dict()["kink_coordinates"] == 2, str(report)
    wrong = np.sign(x)
    wrong[0] = 0.3                      # no side's derivative, nor their mean
    report = gradcheck.check_function(f, dict(x=x), {"dx": wrong})
    assert failing(report) == {"dx"}, str(report)
    # a kink inside the step but not at θ: undecided or passed, never a false alarm
    x = np.array([3e-6, 0.5])
    report = gradcheck.check_function(lambda x: np.maximum(x, 0).sum(), dict(x=x),
                                      {"dx": (x > 0) * 1.0})
    assert report.verdict != "fail", str(report)


def test_what_the_first_trial_found():
    # a sigmoid written as 0.5·(1 + tanh(x/2)): correct, imprecise when saturated
    x = np.array([[-30.0, -20.0, 0.5, 20.0, 30.0]])
    dout = rng.standard_normal(x.shape)
    s = 0.5 * (1 + np.tanh(x / 2))
    report = gradcheck.check_layer("sigmoid", dict(x=x), dout * s * (1 - s), dout)
    assert report.verdict != "fail", str(report)
    # a float32 mask divided by p
    p = 0.6
    mask = ((rng.random((6, 6)) < p) / p).astype(np.float32)
    xd = rng.standard_normal((6, 6))
    dout = rng.standard_normal((6, 6))
    report = gradcheck.check_layer("dropout", dict(x=xd, mask=mask), dout * mask, dout, p=p)
    assert report.passed, str(report)
    # batch norm at a realistic N: the larger steps decide it
    N, D = 200, 30
    x = 5 * rng.standard_normal((N, D)) + 12
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    dout = rng.standard_normal((N, D))
    _, cache = batchnorm_forward(x, gamma, beta)
    report = gradcheck.check_layer("batchnorm", dict(x=x, gamma=gamma, beta=beta),
                                   batchnorm_backward(dout, cache), dout, eps=1e-5)
    assert report.passed, str(report)
    bad = batchnorm_backward(dout, cache)
    bad = (bad[0] * 1.0001, bad[1], bad[2])
    report = gradcheck.check_layer("batchnorm", dict(x=x, gamma=gamma, beta=beta), bad, dout)
    assert failing(report) == {"dx"}, str(report)
    # cs231n's (loss, dx), an extra key, the step keyword
    xs = rng.standard_normal((20, 5))
    y = rng.integers(0, 5, 20)
    assert gradcheck.check_layer("softmax_loss", dict(x=xs, y=y), softmax_loss(xs, y)).passed
    report = gradcheck.check_layer("softmax_loss", dict(x=xs, y=y),
                                   {"dx": softmax_loss(xs, y)[1], "loss": np.ones(1)}, step=1e-6)
    assert report.passed and any("not used: loss" in w for w in report.warnings), str(report)
    with pytest.raises(gradcheck.GradcheckError, match="the input also holds dX"):
        gradcheck.check_layer("relu", dict(x=xs), {"dX": xs}, xs)


def test_gradients_returned_in_another_order_are_named_swapped():
    N, D = 6, 4
    x = rng.standard_normal((N, D))
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    dout = rng.standard_normal((N, D))
    _, cache = batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    report = gradcheck.check_layer("batchnorm", dict(x=x, gamma=gamma, beta=beta),
                                   (dx, dbeta, dgamma), dout)
    d = {t.name: t.diagnosis for t in report.tensors if t.verdict == "fail"}
    assert set(d) == {"dgamma", "dbeta"} and "swapped with dbeta" in d["dgamma"], str(report)


def test_conv_and_max_pool_as_students_write_them():
    from cs231n_layers import conv_backward_naive, max_pool_backward_naive
    x = rng.standard_normal((2, 3, 5, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    conv_param = {"stride": 2, "pad": 1}
    dout = rng.standard_normal((2, 4, 3, 3))
    inputs = dict(x=x, w=w, b=b)
    report = gradcheck.check_layer("conv", inputs,
                                   conv_backward_naive(dout, x, w, b, 2, 1), dout, **conv_param)
    assert report.passed, str(report)
    report = gradcheck.check_layer("conv", inputs,
                                   conv_backward_naive(dout, x, w, b, 2, 1, "ignores_stride"),
                                   dout, **conv_param)
    assert failing(report) >= {"dx", "dw"}, str(report)
    # max pool with overlapping windows (3×3, stride 1): a backward that does not
    # accumulate over the windows fails, one that ignores the stride of 2 fails
    x = rng.standard_normal((2, 2, 5, 5))
    pool = dict(pool_height=3, pool_width=3, stride=1)
    dout = rng.standard_normal((2, 2, 3, 3))
    report = gradcheck.check_layer("max_pool", dict(x=x), max_pool_backward_naive(dout, x, 3, 3, 1),
                                   dout, **pool)
    assert report.passed, str(report)
    report = gradcheck.check_layer("max_pool", dict(x=x),
                                   max_pool_backward_naive(dout, x, 3, 3, 1, "no_accumulate"),
                                   dout, **pool)
    assert failing(report) == {"dx"}, str(report)
    x = rng.standard_normal((2, 2, 6, 6))
    dout = rng.standard_normal((2, 2, 3, 3))
    pool = dict(pool_height=2, pool_width=2, stride=2)
    report = gradcheck.check_layer("max_pool", dict(x=x),
                                   max_pool_backward_naive(dout, x, 2, 2, 2, "ignores_stride"),
                                   dout, **pool)
    assert failing(report) == {"dx"}, str(report)
    # ReLU outputs pooled: windows of zeros tie — the mask form routes to every maximum
    x = np.maximum(0, rng.standard_normal((1, 1, 4, 4)) - 1.5)
    dout = rng.standard_normal((1, 1, 2, 2))
    report = gradcheck.check_layer("max_pool", dict(x=x), max_pool_backward_naive(dout, x, 2, 2, 2),
                                   dout, **pool)
    assert report.verdict != "fail", str(report)


def test_spatial_norms_as_cs231n_writes_them():
    from cs231n_layers import spatial_batchnorm_backward, spatial_groupnorm_backward
    x = 4 * rng.standard_normal((2, 3, 4, 5)) + 10
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    dout = rng.standard_normal(x.shape)
    report = gradcheck.check_layer("spatial_batchnorm", dict(x=x, gamma=gamma, beta=beta),
                                   spatial_batchnorm_backward(dout, x, gamma, beta), dout,
                                   bn_param={"mode": "train", "eps": 1e-5})
    assert report.passed, str(report)
    x = 4 * rng.standard_normal((2, 6, 3, 3)) + 10
    gamma = rng.standard_normal((1, 6, 1, 1))
    beta = rng.standard_normal((1, 6, 1, 1))
    dout = rng.standard_normal(x.shape)
    inputs = dict(x=x, gamma=gamma, beta=beta)
    report = gradcheck.check_layer("spatial_groupnorm", inputs,
                                   spatial_groupnorm_backward(dout, x, gamma, beta, 2), dout,
                                   G=2, eps=1e-5)
    assert report.passed, str(report)
    report = gradcheck.check_layer("spatial_groupnorm", inputs,
                                   spatial_groupnorm_backward(dout, x, gamma, beta, 2,
                                                              bug="one_group"), dout, G=2)
    assert failing(report) == {"dx"}, str(report)


def test_word_embedding_accumulates_repeated_words_and_temporal_affine():
    V, D = 5, 3
    x = np.array([[0, 3, 1, 3], [2, 0, 0, 4]])      # words repeat
    W = rng.standard_normal((V, D))
    dout = rng.standard_normal((2, 4, D))
    dW = np.zeros_like(W)
    np.add.at(dW, x, dout)                            # cs231n's
    report = gradcheck.check_layer("word_embedding", dict(x=x, W=W), (dW,), dout)
    assert report.passed, str(report)
    wrong = np.zeros_like(W)
    wrong[x] += dout                                  # repeated words overwrite, not add
    report = gradcheck.check_layer("word_embedding", dict(x=x, W=W), {"dW": wrong}, dout)
    assert failing(report) == {"dW"}, str(report)
    xs = rng.standard_normal((2, 4, 5))
    w = rng.standard_normal((5, 3))
    b = rng.standard_normal(3)
    dout = rng.standard_normal((2, 4, 3))
    grads = ((dout @ w.T), np.einsum("ntd,ntm->dm", xs, dout), dout.sum(axis=(0, 1)))
    report = gradcheck.check_layer("temporal_affine", dict(x=xs, w=w, b=b), grads, dout)
    assert report.passed, str(report)


def test_temporal_softmax_loss_with_its_mask():
    N, T, V = 3, 4, 5
    x = rng.standard_normal((N, T, V))
    y = rng.integers(0, V, (N, T))
    mask = rng.random((N, T)) > 0.3                   # booleans, as cs231n's captioning
    flat_x, flat_y, flat_m = x.reshape(N * T, V), y.reshape(N * T), mask.reshape(N * T)
    probs = np.exp(flat_x - flat_x.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    loss = -np.sum(flat_m * np.log(probs[np.arange(N * T), flat_y])) / N
    dx = probs.copy()
    dx[np.arange(N * T), flat_y] -= 1
    dx = (dx / N * flat_m[:, None]).reshape(N, T, V)
    inputs = dict(x=x, y=y, mask=mask)
    report = gradcheck.check_layer("temporal_softmax_loss", inputs, (loss, dx))
    assert report.passed, str(report)
    unmasked = ((probs - np.eye(V)[flat_y]) / N).reshape(N, T, V)
    report = gradcheck.check_layer("temporal_softmax_loss", inputs, {"dx": unmasked})
    assert failing(report) == {"dx"}, str(report)


def test_rnn_step_as_cs231n_writes_it():
    N, D, H = 3, 10, 4
    x, prev_h = rng.standard_normal((N, D)), rng.standard_normal((N, H))
    Wx, Wh, b = 0.3 * rng.standard_normal((D, H)), 0.3 * rng.standard_normal((H, H)), \
        0.3 * rng.standard_normal(H)
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    dnext_h = rng.standard_normal((N, H))

    def backward(bug=None):
        da = dnext_h * ((1 - next_h) if bug == "tanh_prime" else (1 - next_h ** 2))
        return da @ Wx.T, da @ Wh.T, x.T @ da, (x[:, :H].T if bug == "dWh_from_x" else
                                                 prev_h.T) @ da, da.sum(axis=0)

    inputs = dict(x=x, prev_h=prev_h, Wx=Wx, Wh=Wh, b=b)
    report = gradcheck.check_layer("rnn_step", inputs, backward(), dnext_h)
    assert report.passed, str(report)
    assert failing(gradcheck.check_layer("rnn_step", inputs, backward("tanh_prime"),
                                         dnext_h)) == {"dx", "dprev_h", "dWx", "dWh", "db"}
    assert failing(gradcheck.check_layer("rnn_step", inputs, backward("dWh_from_x"),
                                         dnext_h)) == {"dWh"}


def test_lstm_step_with_its_two_upstream_gradients_and_the_i_f_swap():
    from cs231n_layers import lstm_step_backward, lstm_step_forward
    N, D, H = 3, 4, 5
    x, prev_h, prev_c = (rng.standard_normal(s) for s in ((N, D), (N, H), (N, H)))
    Wx, Wh, b = rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)), \
        rng.standard_normal(4 * H)
    dnext_h, dnext_c = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    inputs = dict(x=x, prev_h=prev_h, prev_c=prev_c, Wx=Wx, Wh=Wh, b=b)
    *_, cache = lstm_step_forward(**inputs)
    grads = lstm_step_backward(dnext_h, dnext_c, cache)
    report = gradcheck.check_layer("lstm_step", inputs, grads, (dnext_h, dnext_c))
    assert report.passed, str(report)
    assert max(t.difference for t in report.tensors) < 1e-8
    bad = lstm_step_backward(dnext_h, dnext_c, cache, "i_f_swapped")
    report = gradcheck.check_layer("lstm_step", inputs, bad, {"dnext_h": dnext_h,
                                                              "dnext_c": dnext_c})
    assert report.verdict == "fail" and "dprev_c" in failing(report), str(report)
    with pytest.raises(gradcheck.GradcheckError, match="dnext_c"):
        gradcheck.check_layer("lstm_step", inputs, grads, {"dnext_h": dnext_h})


def test_rnn_over_time_and_dWh_not_accumulated():
    from cs231n_layers import rnn_backward, rnn_forward
    N, T, D, H = 2, 3, 4, 5
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    Wx, Wh, b = (0.5 * rng.standard_normal(s) for s in ((D, H), (H, H), (H,)))
    dh = rng.standard_normal((N, T, H))
    inputs = dict(x=x, h0=h0, Wx=Wx, Wh=Wh, b=b)
    h = rnn_forward(**inputs)
    report = gradcheck.check_layer("rnn", inputs, rnn_backward(dh, x, h0, Wx, Wh, h), dh)
    assert report.passed, str(report)
    bad = rnn_backward(dh, x, h0, Wx, Wh, h, "dWh_not_accumulated")
    report = gradcheck.check_layer("rnn", inputs, bad, dh)
    assert failing(report) == {"dWh"}, str(report)


def test_deeplearning_ai_conv_and_pool_channels_last_and_the_stride_bug():
    from dlai_layers import conv_backward, pool_backward
    A_prev = rng.standard_normal((2, 5, 7, 4))
    W, b = rng.standard_normal((3, 3, 4, 8)), rng.standard_normal((1, 1, 1, 8))
    hp = {"stride": 2, "pad": 1}
    dZ = rng.standard_normal((2, 3, 4, 8))
    grads = conv_backward(dZ, A_prev, W, b, hp)
    report = gradcheck.check_layer("conv", dict(A_prev=A_prev, W=W, b=b), grads, dZ, **hp)
    assert report.passed, str(report)
    assert {t.name for t in report.tensors} == {"dA_prev", "dW", "db"}
    A = rng.standard_normal((2, 6, 6, 3))
    dA = rng.standard_normal((2, 3, 3, 3))
    for mode, op in (("max", "max_pool"), ("average", "avg_pool")):
        hp = {"f": 2, "stride": 2}
        good = pool_backward(dA, A, hp, mode)
        report = gradcheck.check_layer(op, dict(A_prev=A), good, dA, **hp)
        assert report.passed, (mode, str(report))
        # The notebook tests pool_backward at stride 1, where this bug is invisible.
        bad = pool_backward(dA, A, hp, mode, "no_stride")
        report = gradcheck.check_layer(op, dict(A_prev=A), bad, dA, **hp)
        assert failing(report) == {"dA_prev"}, (mode, str(report))


def test_lstm_over_time_and_the_i_f_swap():
    from cs231n_layers import lstm_backward, lstm_forward
    N, T, D, H = 2, 3, 4, 3
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    Wx, Wh, b = (0.5 * rng.standard_normal(s) for s in ((D, 4 * H), (H, 4 * H), (4 * H,)))
    dh = rng.standard_normal((N, T, H))
    inputs = dict(x=x, h0=h0, Wx=Wx, Wh=Wh, b=b)
    _, caches = lstm_forward(**inputs)
    report = gradcheck.check_layer("lstm", inputs, lstm_backward(dh, caches), dh)
    assert report.passed, str(report)
    report = gradcheck.check_layer("lstm", inputs, lstm_backward(dh, caches, "i_f_swapped"), dh)
    assert report.verdict == "fail", str(report)


def test_deeplearning_ai_rnn_cell_in_columns_and_the_missing_tanh_derivative():
    from dlai_layers import rnn_cell_backward
    n_x, n_a, m = 3, 5, 10
    xt, a_prev = rng.standard_normal((n_x, m)), rng.standard_normal((n_a, m))
    parameters = {"Wax": rng.standard_normal((n_a, n_x)), "Waa": rng.standard_normal((n_a, n_a)),
                  "ba": rng.standard_normal((n_a, 1))}
    da_next = rng.standard_normal((n_a, m))
    inputs = dict(xt=xt, a_prev=a_prev, **parameters)
    report = gradcheck.check_layer("rnn_cell", inputs,
                                   rnn_cell_backward(da_next, xt, a_prev, parameters), da_next)
    assert report.passed, str(report)
    bad = rnn_cell_backward(da_next, xt, a_prev, parameters, "no_tanh_derivative")
    report = gradcheck.check_layer("rnn_cell", inputs, bad, da_next)
    assert failing(report) == {"dxt", "da_prev", "dWax", "dWaa", "dba"}, str(report)


def test_deeplearning_ai_lstm_cell_over_a_prev_and_xt_and_a_dc_prev_missing_the_a_next_path():
    from dlai_layers import lstm_cell_backward, lstm_cell_forward
    n_x, n_a, m = 3, 5, 10
    xt, a_prev, c_prev = (rng.standard_normal((n, m)) for n in (n_x, n_a, n_a))
    parameters = {}
    for gate in "fico":
        parameters["W" + gate] = rng.standard_normal((n_a, n_a + n_x))
        parameters["b" + gate] = rng.standard_normal((n_a, 1))
    da_next, dc_next = rng.standard_normal((n_a, m)), rng.standard_normal((n_a, m))
    _, _, cache = lstm_cell_forward(xt, a_prev, c_prev, parameters)
    inputs = dict(xt=xt, a_prev=a_prev, c_prev=c_prev, **parameters)
    upstream = {"da_next": da_next, "dc_next": dc_next}
    report = gradcheck.check_layer("lstm_cell", inputs,
                                   lstm_cell_backward(da_next, dc_next, cache), upstream)
    assert report.passed, str(report)
    bad = lstm_cell_backward(da_next, dc_next, cache, "dc_prev_without_a_next")
    report = gradcheck.check_layer("lstm_cell", inputs, bad, (da_next, dc_next))
    assert failing(report) == {"dc_prev"}, str(report)
