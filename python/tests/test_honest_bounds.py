"""False alarms an adversarial sweep found, each a correct backprop written as people write
it: a confident classifier whose probabilities round to 1, a batch tiled from a few
examples, labels normalised in float32, values that overflow, gradients below f32's
normal range. None may fail; a real bug beside them still does. And directional checks
see two swapped entries."""

import numpy as np
import pytest

import gradcheck
from helpers import exercise


def cs231n_net(m, margin, dtype, seed=0, bug=None, C=3):
    """Rows, integer labels, softmax, every example confidently right (class 0 by `margin`):
    p rounds to 1 in `dtype` for all of them alike."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, 2)).astype(dtype)
    W1 = rng.standard_normal((2, 3)).astype(dtype)
    b1 = (0.1 * rng.standard_normal(3)).astype(dtype)
    W2 = rng.standard_normal((3, C)).astype(dtype)
    b2 = np.zeros(C, dtype)
    b2[0] = margin
    y = np.zeros(m, np.int64)
    h = np.maximum(0, X @ W1 + b1)
    s = h @ W2 + b2
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    ds = p.copy()
    ds[np.arange(m), y] -= 1
    ds /= m
    g = {"W2": h.T @ ds, "b2": ds.sum(0)}
    dh = ds @ W2.T
    dh[h <= 0] = 0
    g.update(W1=X.T @ dh, b1=dh.sum(0))
    if bug:
        g[bug] = g[bug] * dtype(1.01)
    return dict(W1=W1, b1=b1, W2=W2, b2=b2), g, X, y


@pytest.mark.parametrize("dtype,margin", [(np.float64, 37.0), (np.float32, 17.0)])
def test_a_confident_classifier_is_never_a_false_alarm(dtype, margin):
    params, grads, X, y = cs231n_net(1000, margin, dtype)
    report = gradcheck.check(params, grads, X, y=y, loss="softmax", device="cpu")
    assert report.verdict != "fail", str(report)
    params, grads, X, y = cs231n_net(1000, 2.0, dtype, bug="W1")
    report = gradcheck.check(params, grads, X, y=y, loss="softmax", device="cpu")
    assert "W1" in [t.name for t in report.tensors if t.verdict == "fail"], str(report)


def nnfs_tiled(unique, repeats, bug=None):
    """NNFS in float32: a batch of `unique` examples tiled `repeats` times (identical copies
    round identically)."""
    rng = np.random.default_rng(1)
    X = np.tile(rng.standard_normal((unique, 2)).astype(np.float32), (repeats, 1))
    y = np.tile(rng.integers(0, 3, unique), repeats)
    W1 = (0.5 * rng.standard_normal((2, 16))).astype(np.float32)
    b1 = (0.1 * rng.standard_normal((1, 16))).astype(np.float32)
    W2 = (0.5 * rng.standard_normal((16, 3))).astype(np.float32)
    b2 = (0.1 * rng.standard_normal((1, 3))).astype(np.float32)
    z1 = X @ W1 + b1
    a1 = np.maximum(0, z1)
    z2 = a1 @ W2 + b2
    e = np.exp(z2 - z2.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    d = p.copy()
    d[range(len(y)), y] -= 1
    d = d / len(y)
    g = {"dW2": a1.T @ d, "db2": d.sum(0, keepdims=True)}
    da = d @ W2.T
    da[z1 <= 0] = 0
    g.update(dW1=X.T @ da, db1=da.sum(0, keepdims=True))
    if bug:
        g[bug] = g[bug] * np.float32(1.001)
    return dict(W1=W1, b1=b1, W2=W2, b2=b2), g, X, y


def test_a_tiled_float32_batch_is_never_a_false_alarm():
    params, grads, X, y = nnfs_tiled(4, 1000)
    report = gradcheck.check(params, grads, X, y=y, loss="softmax", device="cpu")
    assert report.verdict != "fail", str(report)
    params, grads, X, y = nnfs_tiled(4, 10, bug="dW2")
    report = gradcheck.check(params, grads, X, y=y, loss="softmax", device="cpu",
                             threshold=1e-4)
    assert [t.name for t in report.tensors if t.verdict == "fail"] == ["W2"], str(report)


def test_labels_normalised_in_float32_admit_both_gradient_forms():
    rng = np.random.default_rng(2)
    m = 12
    X = rng.standard_normal((3, m))
    Y = rng.random((4, m)).astype(np.float32)
    Y = (Y / Y.sum(0, keepdims=True)).astype(np.float64)   # sums off by ~1e-8
    assert np.abs(Y.sum(0) - 1).max() > 0
    W1, b1 = rng.standard_normal((5, 3)), rng.standard_normal((5, 1))
    W2, b2 = rng.standard_normal((4, 5)), rng.standard_normal((4, 1))
    A1 = np.tanh(W1 @ X + b1)
    Z2 = W2 @ A1 + b2
    P = np.exp(Z2 - Z2.max(0))
    P /= P.sum(0)
    for dZ2 in [(P - Y) / m, (P * Y.sum(0) - Y) / m]:   # p − y, and CE's p·Σy − y
        dZ1 = (W2.T @ dZ2) * (1 - A1 ** 2)
        grads = dict(dW1=dZ1 @ X.T, db1=dZ1.sum(1, keepdims=True), dW2=dZ2 @ A1.T,
                     db2=dZ2.sum(1, keepdims=True))
        report = gradcheck.check(dict(W1=W1, b1=b1, W2=W2, b2=b2), grads, X, Y,
                                 hidden="tanh", loss="softmax")
        assert report.verdict != "fail", str(report)


def test_finite_differences_that_overflow_are_undecided_not_failed():
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((3, 4)), rng.standard_normal((1, 4))
    W1, b1 = rng.standard_normal((4, 3)), rng.standard_normal((4, 1))
    W2, b2 = 1e20 * rng.standard_normal((1, 4)), np.zeros((1, 1))
    Z1 = W1 @ X + b1
    A1 = np.maximum(0, Z1)
    dZ2 = (W2 @ A1 + b2 - Y) / 4
    dZ1 = (W2.T @ dZ2) * (Z1 > 0)
    grads = dict(dW1=dZ1 @ X.T, db1=dZ1.sum(1, keepdims=True), dW2=dZ2 @ A1.T,
                 db2=dZ2.sum(1, keepdims=True))
    report = gradcheck.check(dict(W1=W1, b1=b1, W2=W2, b2=b2), grads, X, Y, loss="mse",
                             method="full", device="cpu")
    assert report.verdict != "fail", str(report)


def test_swapped_entries_are_seen_along_every_direction_draw():
    params, grads, X, Y = exercise()
    swapped = grads["dW2"].copy()
    swapped[2, 0], swapped[2, 1] = swapped[2, 1], swapped[2, 0]
    grads["dW2"] = swapped
    for seed in range(1, 9):
        report = gradcheck.check(params, grads, X, Y, directions=6,
                                 sample_seed=seed)
        assert report.verdict == "fail", f"seed {seed}: {report}"


def test_a_float32_sum_that_absorbs_thousands_of_terms_is_never_a_false_alarm():
    """One misclassified example leads db2's float32 sum; the other 5999 terms are each
    below half its ulp and all dropped: the gradient is 2.5e-4 off, by its own arithmetic."""
    rng = np.random.default_rng(0)
    m = 6000
    X = rng.standard_normal((m, 2)).astype(np.float32)
    W1 = rng.standard_normal((2, 3)).astype(np.float32)
    b1 = (0.1 * rng.standard_normal(3)).astype(np.float32)
    W2 = (0.01 * rng.standard_normal((3, 3))).astype(np.float32)
    b2 = np.array([17, 0, 0], np.float32)
    y = np.zeros(m, np.int64)
    y[0] = 1
    h = np.maximum(0, X @ W1 + b1)
    s = h @ W2 + b2
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    ds = p.copy()
    ds[np.arange(m), y] -= 1
    ds /= m
    g = {"W2": h.T @ ds, "b2": ds.sum(0)}
    dh = ds @ W2.T
    dh[h <= 0] = 0
    g.update(W1=X.T @ dh, b1=dh.sum(0))
    report = gradcheck.check(dict(W1=W1, b1=b1, W2=W2, b2=b2), g, X, y=y, loss="softmax",
                             device="cpu")
    assert report.verdict != "fail", str(report)


def test_a_float32_forward_with_float64_gradients_is_judged_as_float32():
    """NNFS's layers without nnfs.init(): float32 data and weights, a float64 dropout mask
    (np.random.binomial) that turns the backward's arrays float64. The gradients carry the
    float32 forward's rounding whatever their dtype."""
    rng = np.random.default_rng(3)
    m, keep = 300, 0.9
    X = rng.standard_normal((m, 2)).astype(np.float32)
    y = rng.integers(0, 3, m)
    W1 = (0.5 * rng.standard_normal((2, 64))).astype(np.float32)
    b1 = np.zeros((1, 64), np.float32)
    W2 = (0.5 * rng.standard_normal((64, 3))).astype(np.float32)
    b2 = np.zeros((1, 3), np.float32)
    mask = rng.binomial(1, keep, (m, 64)) / keep          # float64
    a1 = np.maximum(0, X @ W1 + b1)                      # float32
    d1 = a1 * mask                                       # float64 from here on
    s = d1 @ W2 + b2                                     # float64
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    ds = p.copy()
    ds[np.arange(m), y] -= 1
    ds = ds / m
    g = {"dW2": d1.T @ ds, "db2": ds.sum(0, keepdims=True)}
    dd1 = (ds @ W2.T) * mask
    dd1[a1 <= 0] = 0
    g.update(dW1=X.T @ dd1, db1=dd1.sum(0, keepdims=True))
    assert g["dW1"].dtype == np.float64
    params = dict(W1=W1, b1=b1, W2=W2, b2=b2)
    report = gradcheck.check(params, g, X, y=y, loss="softmax", keep_prob=keep, masks=[mask],
                             device="cpu")
    assert report.verdict != "fail", str(report)
    assert "judged as f32" in str(report) and "forward pass" in str(report), str(report)
    # A real bug is still a FAIL.
    bad = dict(g, dW2=g["dW2"] * 2)
    assert gradcheck.check(params, bad, X, y=y, loss="softmax", keep_prob=keep, masks=[mask],
                           device="cpu").verdict == "fail"
