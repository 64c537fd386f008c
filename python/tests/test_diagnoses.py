"""The diagnoses a failing tensor gets for the bugs people make: an L2 term left out or
scaled otherwise (the error ∝ the parameter), a forgotten 1/keep_prob, a squared error
under another convention, a loss scaled differently everywhere; no tautology on a
one-element tensor, and a word where no pattern fits."""

import numpy as np

import gradcheck


def course_net(seed=0, m=20, keep_prob=None, loss="bce", l2=0.0, bugs=()):
    """The course's 3-layer net in columns, written as the notebooks write it."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((4, m))
    C = 3 if loss == "mse" else 1
    Y = rng.standard_normal((C, m)) if loss == "mse" else (rng.random((1, m)) > 0.5) * 1.0
    P = {"W1": rng.standard_normal((6, 4)), "b1": rng.standard_normal((6, 1)),
         "W2": rng.standard_normal((5, 6)), "b2": rng.standard_normal((5, 1)),
         "W3": rng.standard_normal((C, 5)), "b3": rng.standard_normal((C, 1))}
    D = [(rng.random((6, m)) < keep_prob) * 1.0, (rng.random((5, m)) < keep_prob) * 1.0] \
        if keep_prob else None
    Z1 = P["W1"] @ X + P["b1"]
    A1 = np.maximum(0, Z1)
    if D:
        A1 = A1 * D[0] / keep_prob
    Z2 = P["W2"] @ A1 + P["b2"]
    A2 = np.maximum(0, Z2)
    if D:
        A2 = A2 * D[1] / keep_prob
    Z3 = P["W3"] @ A2 + P["b3"]
    if loss == "mse":
        dZ3 = (Z3 - Y) / m * (2.0 if "sse" in bugs else 1.0)
    else:
        dZ3 = (1 / (1 + np.exp(-Z3)) - Y) / m
    if "scaled" in bugs:
        dZ3 = dZ3 * 3.0
    g = {"dW3": dZ3 @ A2.T, "db3": dZ3.sum(1, keepdims=True)}
    dA2 = P["W3"].T @ dZ3
    if D:
        dA2 = dA2 * D[1] / (1.0 if "keep" in bugs or "keep2" in bugs else keep_prob)
    dZ2 = dA2 * (Z2 > 0)
    g.update(dW2=dZ2 @ A1.T, db2=dZ2.sum(1, keepdims=True))
    dA1 = P["W2"].T @ dZ2
    if D:
        dA1 = dA1 * D[0] / (1.0 if "keep2" in bugs else keep_prob)
    dZ1 = dA1 * (Z1 > 0)
    g.update(dW1=dZ1 @ X.T, db1=dZ1.sum(1, keepdims=True))
    for k in ("W1", "W2", "W3"):
        if "no_l2" not in bugs:
            g["d" + k] = g["d" + k] + (l2 / m) * P[k] * (0.5 if "half_l2" in bugs else 1.0)
    return P, g, X, Y, D


def diagnoses(report):
    return {t.name: t.diagnosis for t in report.tensors if t.verdict == "fail"}


def test_a_missing_or_halved_l2_term_is_named_as_one():
    P, g, X, Y, _ = course_net(l2=0.7, bugs=("no_l2",))
    report = gradcheck.check(P, g, X, Y, l2=0.7)
    d = diagnoses(report)
    assert set(d) == {"W1", "W2", "W3"}, str(report)
    assert all("L2 term's gradient is missing" in v for v in d.values()), d
    # the model's own factor, in the course's λ
    assert all("l2 = λ = 0.7" in v for v in d.values()), d
    P, g, X, Y, _ = course_net(l2=0.7, bugs=("half_l2",))
    d = diagnoses(gradcheck.check(P, g, X, Y, l2=0.7))
    assert all("the gradient fits weight_l2" in v and "l2 = λ = 0.35" in v
               for v in d.values()), d


def test_a_forgotten_one_over_keep_prob_is_named():
    P, g, X, Y, D = course_net(keep_prob=0.8, bugs=("keep",))
    report = gradcheck.check(P, g, X, Y, keep_prob=0.8, masks=D)
    d = diagnoses(report)
    assert any("= 1/keep_prob" in v or "= keep_prob" in v for v in d.values()), str(report)


def test_a_squared_error_under_another_convention_is_named():
    P, g, X, Y, _ = course_net(loss="mse", bugs=("sse",))
    report = gradcheck.check(P, g, X, Y, loss="mse")
    assert report.verdict == "fail"
    assert report.to_dict()["diagnosis"] and "loss=sse" in report.to_dict()["diagnosis"], \
        str(report)
    assert all("loss=sse" in v for v in diagnoses(report).values()), str(report)


def test_a_loss_scaled_everywhere_is_said_once():
    P, g, X, Y, _ = course_net(bugs=("scaled",))
    report = gradcheck.check(P, g, X, Y)
    assert "the loss is scaled differently" in (report.to_dict()["diagnosis"] or ""), \
        str(report)
    assert "the loss is scaled differently" in str(report)


def test_a_one_element_tensor_gets_no_tautology_and_every_failure_a_word():
    P, g, X, Y, _ = course_net()
    g = dict(g, db3=g["db3"] + 0.01, dW1=g["dW1"] + 0.01 * np.arange(24).reshape(6, 4) ** 2)
    report = gradcheck.check(P, g, X, Y)
    d = diagnoses(report)
    assert "single entry" not in (d["b3"] or "")
    assert all(v for v in d.values()), d


def test_a_relu_mask_that_lets_off_units_through_names_them():
    rng = np.random.default_rng(5)
    m = 30
    X = rng.standard_normal((4, m))
    Y = (rng.random((1, m)) > 0.5) * 1.0
    P = {"W1": rng.standard_normal((6, 4)), "b1": rng.standard_normal((6, 1)),
         "W2": rng.standard_normal((5, 6)), "b2": rng.standard_normal((5, 1)) - 2.5,
         "W3": rng.standard_normal((1, 5)), "b3": rng.standard_normal((1, 1))}
    Z1 = P["W1"] @ X + P["b1"]
    A1 = np.maximum(0, Z1)
    Z2 = P["W2"] @ A1 + P["b2"]
    A2 = np.maximum(0, Z2)
    A3 = 1 / (1 + np.exp(-(P["W3"] @ A2 + P["b3"])))
    dZ3 = (A3 - Y) / m
    g = {"dW3": dZ3 @ A2.T, "db3": dZ3.sum(1, keepdims=True)}
    dZ2 = (P["W3"].T @ dZ3) * (A2 >= 0)          # the bug: every unit passes
    g.update(dW2=dZ2 @ A1.T, db2=dZ2.sum(1, keepdims=True))
    dZ1 = (P["W2"].T @ dZ2) * (Z1 > 0)
    g.update(dW1=dZ1 @ X.T, db1=dZ1.sum(1, keepdims=True))
    report = gradcheck.check(P, g, X, Y)
    d = diagnoses(report)
    assert "layer 2's units" in (d.get("b2") or "") and "A ≥ 0" in d["b2"], str(report)
    # The wrong mask's error flows down into layer 1: that layer's mask is not blamed.
    assert not any("layer 1's unit" in (d.get(k) or "") for k in ("W1", "b1")), str(report)


def test_a_leaky_slope_or_a_dropout_mask_is_not_called_a_relu_mask():
    rng = np.random.default_rng(7)
    m, keep_prob = 30, 0.8
    X = rng.standard_normal((4, m))
    Y = (rng.random((1, m)) > 0.5) * 1.0
    P = {"W1": rng.standard_normal((6, 4)), "b1": rng.standard_normal((6, 1)),
         "W2": rng.standard_normal((1, 6)), "b2": rng.standard_normal((1, 1))}
    Z1 = P["W1"] @ X + P["b1"]
    # leaky_relu with NNFS's 0.01, differentiated as a plain ReLU
    A1 = np.where(Z1 > 0, Z1, 0.01 * Z1)
    A2 = 1 / (1 + np.exp(-(P["W2"] @ A1 + P["b2"])))
    dZ2 = (A2 - Y) / m
    dZ1 = (P["W2"].T @ dZ2) * (Z1 > 0)
    g = {"dW2": dZ2 @ A1.T, "db2": dZ2.sum(1, keepdims=True),
         "dW1": dZ1 @ X.T, "db1": dZ1.sum(1, keepdims=True)}
    report = gradcheck.check(P, g, X, Y, hidden="leaky_relu")
    d = diagnoses(report)
    assert "leaky_relu's is 0.01" in (d.get("b1") or ""), str(report)
    assert "ReLU mask" not in d["b1"]
    # a dropout mask left out of the backprop
    D1 = (rng.random((6, m)) < keep_prob) * 1.0
    A1 = np.maximum(0, Z1) * D1 / keep_prob
    A2 = 1 / (1 + np.exp(-(P["W2"] @ A1 + P["b2"])))
    dZ2 = (A2 - Y) / m
    dZ1 = (P["W2"].T @ dZ2) / keep_prob * (Z1 > 0)
    g = {"dW2": dZ2 @ A1.T, "db2": dZ2.sum(1, keepdims=True),
         "dW1": dZ1 @ X.T, "db1": dZ1.sum(1, keepdims=True)}
    report = gradcheck.check(P, g, X, Y, keep_prob=keep_prob, masks=[D1])
    d = diagnoses(report)
    assert d, str(report)
    assert all("dropout mask" in v for v in d.values() if "unit" in v), str(report)


def test_the_keep_probability_squared_is_named():
    # both layers' 1/keep_prob forgotten: layer 1's gradients carry it twice
    P, g, X, Y, D = course_net(keep_prob=0.8, bugs=("keep2",))
    d = diagnoses(gradcheck.check(P, g, X, Y, keep_prob=0.8, masks=D))
    assert "= keep_prob²" in (d.get("W1") or ""), d
    assert "= keep_prob:" in (d.get("W2") or ""), d


def test_the_course_names_its_lambda_lambd_and_a_pair_of_dicts_is_explained():
    P, g, X, Y, _ = course_net(l2=0.7)
    assert gradcheck.check(P, g, X, Y, lambd=0.7).passed
    try:
        gradcheck.check((P, g), None, X, Y)
    except gradcheck.GradcheckError as e:
        assert "two arguments" in str(e)
    else:
        raise AssertionError("a (parameters, grads) pair was accepted")
