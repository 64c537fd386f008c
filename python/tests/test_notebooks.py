"""What notebooks hold, passed as they hold it: NNFS's layer objects and names, cs231n's
models, `y`, masks saved divided by keep_prob, the losses' and regularisers' own
conventions; and the command line's every option, progress, and the report's objects."""

import os

import numpy as np
import pytest

import gradcheck
from helpers import exercise


# --- NNFS, as the book writes it (float32-friendly numpy, rows, layer objects) ---------

class Layer_Dense:
    def __init__(self, n_inputs, n_neurons, rng, weight_regularizer_l1=0.0,
                 weight_regularizer_l2=0.0, bias_regularizer_l1=0.0,
                 bias_regularizer_l2=0.0):
        self.weights = 0.1 * rng.standard_normal((n_inputs, n_neurons))
        self.biases = 0.1 * rng.standard_normal((1, n_neurons))
        self.weight_regularizer_l1 = weight_regularizer_l1
        self.weight_regularizer_l2 = weight_regularizer_l2
        self.bias_regularizer_l1 = bias_regularizer_l1
        self.bias_regularizer_l2 = bias_regularizer_l2

    def forward(self, inputs):
        self.inputs = inputs
        self.output = inputs @ self.weights + self.biases

    def backward(self, dvalues):
        self.dweights = self.inputs.T @ dvalues
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        if self.weight_regularizer_l1 > 0:
            dL1 = np.ones_like(self.weights)
            dL1[self.weights < 0] = -1
            self.dweights += self.weight_regularizer_l1 * dL1
        if self.weight_regularizer_l2 > 0:
            self.dweights += 2 * self.weight_regularizer_l2 * self.weights
        if self.bias_regularizer_l1 > 0:
            dL1 = np.ones_like(self.biases)
            dL1[self.biases < 0] = -1
            self.dbiases += self.bias_regularizer_l1 * dL1
        if self.bias_regularizer_l2 > 0:
            self.dbiases += 2 * self.bias_regularizer_l2 * self.biases
        self.dinputs = dvalues @ self.weights.T


def nnfs_softmax_net(seed=0, bug=None, **regularisers):
    """Dense → ReLU → Dense → softmax + cross-entropy, NNFS's combined backward."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((30, 2))
    y = rng.integers(0, 3, 30)
    dense1 = Layer_Dense(2, 8, rng, **regularisers)
    dense2 = Layer_Dense(8, 3, rng, **regularisers)
    dense1.forward(X)
    relu = np.maximum(0, dense1.output)
    dense2.forward(relu)
    exp = np.exp(dense2.output - dense2.output.max(axis=1, keepdims=True))
    probs = exp / exp.sum(axis=1, keepdims=True)
    dinputs = probs.copy()
    dinputs[range(len(y)), y] -= 1
    dinputs /= len(y)
    dense2.backward(dinputs)
    drelu = dense2.dinputs.copy()
    if bug != "mask":
        drelu[dense1.output <= 0] = 0
    dense1.backward(drelu)
    if bug == "dweights":
        dense2.dweights *= 1.01
    return [dense1, dense2], X, y


def test_nnfs_layer_objects_are_checked_as_they_are():
    layers, X, y = nnfs_softmax_net()
    report = gradcheck.check(layers, X=X, y=y, hidden="relu", loss="softmax")
    assert report.passed, str(report)
    assert report.to_dict()["layout"] == "rows"
    for bug, failing in [("mask", {"W1", "b1"}), ("dweights", {"W2"})]:
        layers, X, y = nnfs_softmax_net(bug=bug)
        report = gradcheck.check(layers, X=X, y=y, hidden="relu", loss="softmax")
        assert {t.name for t in report.tensors if t.verdict == "fail"} == failing, bug


def test_nnfs_regularisers_by_their_own_names():
    regs = dict(weight_regularizer_l1=5e-4, weight_regularizer_l2=5e-4,
                bias_regularizer_l1=2e-4, bias_regularizer_l2=3e-4)
    layers, X, y = nnfs_softmax_net(**regs)
    keywords = dict(weight_l1=5e-4, weight_l2=5e-4, bias_l1=2e-4, bias_l2=3e-4)
    report = gradcheck.check(layers, X=X, y=y, loss="softmax", **keywords)
    assert report.passed, str(report)
    # Layer objects carry their regularisers: read from them when not named.
    report = gradcheck.check(layers, X=X, y=y, loss="softmax")
    assert report.passed, str(report)
    # Dicts carry none: unnamed, the regularisers' gradient is an error.
    params, grads = gradcheck.from_layers(layers)
    report = gradcheck.check(params, grads, X, y=y, loss="softmax")
    assert report.verdict == "fail"


def test_nnfs_chapter_14_regularises_its_first_layer_only():
    """dense1 = Layer_Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4),
    dense2 = Layer_Dense(64, 3): one coefficient per layer."""
    rng = np.random.default_rng(14)
    X = rng.standard_normal((60, 2))
    y = rng.integers(0, 3, 60)
    dense1 = Layer_Dense(2, 16, rng, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4)
    dense2 = Layer_Dense(16, 3, rng)
    dense1.forward(X)
    relu = np.maximum(0, dense1.output)
    dense2.forward(relu)
    exp = np.exp(dense2.output - dense2.output.max(axis=1, keepdims=True))
    probs = exp / exp.sum(axis=1, keepdims=True)
    dinputs = probs.copy()
    dinputs[range(len(y)), y] -= 1
    dinputs /= len(y)
    dense2.backward(dinputs)
    drelu = dense2.dinputs.copy()
    drelu[dense1.output <= 0] = 0
    dense1.backward(drelu)
    report = gradcheck.check([dense1, dense2], X=X, y=y, loss="softmax")
    assert report.passed, str(report)
    assert "weight L2 0.0005,0 (per layer)" in str(report)
    # The same by keywords, one value per layer.
    params, grads = gradcheck.from_layers([dense1, dense2])
    report = gradcheck.check(params, grads, X, y=y, loss="softmax", weight_l2=[5e-4, 0],
                             bias_l2=[5e-4, 0])
    assert report.passed, str(report)
    # The coefficient on every layer: layer 2's gradient lacks it, and fails.
    report = gradcheck.check(params, grads, X, y=y, loss="softmax", weight_l2=5e-4,
                             bias_l2=5e-4)
    assert {t.name for t in report.tensors if t.verdict == "fail"} == {"W2", "b2"}, \
        str(report)


def test_nnfs_style_names_in_dicts():
    layers, X, y = nnfs_softmax_net()
    params = {f"dense{k}_{what}": getattr(layer, what)
              for k, layer in enumerate(layers, 1) for what in ("weights", "biases")}
    grads = {f"dense{k}_d{what}": getattr(layer, f"d{what}")
             for k, layer in enumerate(layers, 1) for what in ("weights", "biases")}
    report = gradcheck.check(params, grads, X, y=y, loss="softmax")
    assert report.passed, str(report)
    params, grads = gradcheck.from_layers(layers)
    assert sorted(params) == ["W1", "W2", "b1", "b2"]
    assert sorted(grads) == ["dW1", "dW2", "db1", "db2"]


def test_mean_squared_error_as_nnfs_and_pytorch_write_it():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 3))
    Y = rng.standard_normal((20, 3))
    W1, b1 = rng.standard_normal((3, 6)), rng.standard_normal((1, 6))
    W2, b2 = rng.standard_normal((6, 3)), rng.standard_normal((1, 3))
    z1 = X @ W1 + b1
    a1 = np.tanh(z1)
    out = a1 @ W2 + b2
    # loss = mean over outputs and examples of (ŷ − y)²: dŷ = 2(ŷ − y)/outputs/m.
    dout = 2 * (out - Y) / Y.shape[1] / Y.shape[0]
    grads = {"dW2": a1.T @ dout, "db2": dout.sum(0, keepdims=True)}
    dz1 = (dout @ W2.T) * (1 - a1 ** 2)
    grads.update(dW1=X.T @ dz1, db1=dz1.sum(0, keepdims=True))
    params = dict(W1=W1, b1=b1, W2=W2, b2=b2)
    ok = gradcheck.check(params, grads, X, Y, hidden="tanh", loss="mse_mean")
    assert ok.passed, str(ok)
    # The same gradients under the ½‖ŷ − y‖² convention: off by the factor 2/3.
    other = gradcheck.check(params, grads, X, Y, hidden="tanh", loss="mse")
    assert other.verdict == "fail"


def cs231n_assignment1_net(reg=0.05, seed=1):
    """cs231n assignment 1's TwoLayerNet: loss += reg·(ΣW1² + ΣW2²), dW += 2·reg·W."""
    rng = np.random.default_rng(seed)
    N, D, H, C = 6, 4, 10, 3
    X, y = rng.standard_normal((N, D)), rng.integers(0, C, N)

    class TwoLayerNet:
        params = {"W1": 1e-1 * rng.standard_normal((D, H)), "b1": np.zeros(H),
                  "W2": 1e-1 * rng.standard_normal((H, C)), "b2": np.zeros(C)}

    net = TwoLayerNet()
    p = net.params
    h = np.maximum(0, X @ p["W1"] + p["b1"])
    s = h @ p["W2"] + p["b2"]
    prob = np.exp(s - s.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    ds = prob
    ds[np.arange(N), y] -= 1
    ds /= N
    grads = {"W2": h.T @ ds + 2 * reg * p["W2"], "b2": ds.sum(0)}
    dh = ds @ p["W2"].T
    dh[h <= 0] = 0
    grads.update(W1=X.T @ dh + 2 * reg * p["W1"], b1=dh.sum(0))
    return net, grads, X, y


def test_cs231n_models_and_reg_and_lowercase_y():
    net, grads, X, y = cs231n_assignment1_net()
    report = gradcheck.check(net, grads, X, y=y, loss="softmax", reg=0.05)
    assert report.passed, str(report)
    # The 0.5·reg years' convention (l2 = reg·N) does not fit reg·ΣW².
    wrong = gradcheck.check(net, grads, X, y=y, loss="softmax", l2=0.05 * X.shape[0])
    assert {t.name for t in wrong.tensors if t.verdict == "fail"} == {"W1", "W2"}


def test_masks_saved_divided_by_keep_prob_are_read_and_said_so():
    rng = np.random.default_rng(6)
    X, Y = rng.standard_normal((3, 40)), (rng.random((1, 40)) > 0.5).astype(float)
    W1, b1 = rng.standard_normal((5, 3)), rng.standard_normal((5, 1))
    W2, b2 = rng.standard_normal((1, 5)), rng.standard_normal((1, 1))
    p = 0.8
    D1 = (rng.random((5, 40)) < p) / p          # cs231n's and NNFS's mask / p
    A1 = np.maximum(0, W1 @ X + b1) * D1
    A2 = 1 / (1 + np.exp(-(W2 @ A1 + b2)))
    dZ2 = (A2 - Y) / 40
    dA1 = (W2.T @ dZ2) * D1
    dZ1 = dA1 * (W1 @ X + b1 > 0)
    grads = dict(dW1=dZ1 @ X.T, db1=dZ1.sum(1, keepdims=True), dW2=dZ2 @ A1.T,
                 db2=dZ2.sum(1, keepdims=True))
    params = dict(W1=W1, b1=b1, W2=W2, b2=b2)
    report = gradcheck.check(params, grads, X, Y, keep_prob=p, masks=[D1])
    assert report.passed, str(report)
    assert any("divided by keep_prob" in w for w in report.warnings), report.warnings
    as_01 = gradcheck.check(params, grads, X, Y, keep_prob=p, masks=[D1 * p])
    assert as_01.passed and not any("divided" in w for w in as_01.warnings)


def test_one_mask_for_two_hidden_layers_says_two_are_needed():
    params, grads, X, Y = exercise(fixed=False)
    with pytest.raises(gradcheck.GradcheckError, match="one mask per hidden layer, D1 … D2"):
        gradcheck.check(params, grads, X, Y, keep_prob=0.8, masks=[np.ones((5, 3))])


def test_a_list_of_arrays_is_refused_with_the_fix():
    layers, X, y = nnfs_softmax_net()
    with pytest.raises(gradcheck.GradcheckError, match="pass a dict"):
        gradcheck.check([layers[0].weights, layers[0].biases], {}, X, y)


# --- the command line's options, progress and the report's objects --------------------

def test_every_option_of_the_command_line():
    params, grads, X, Y = exercise()
    sample = gradcheck.check(params, grads, X, Y, sample=10, sample_seed=3)
    assert sample.to_dict()["scope"]["mode"] == "sample"
    assert sample.to_dict()["scope"]["evaluated"] == 10
    dirs = gradcheck.check(params, grads, X, Y, directions=6)
    assert dirs.to_dict()["scope"]["mode"] == "directions"
    top = gradcheck.check(params, grads, X, Y, top=2, max_memory="1G", chunk=8,
                          limits="webgpu")
    assert len(top.worst) == 2
    assert gradcheck.check(params, grads, X, Y, max_memory=1 << 30).passed
    partial = {k: v for k, v in grads.items() if k != "dW3"}
    with pytest.raises(gradcheck.GradcheckError, match="partial=True"):
        gradcheck.check(params, partial, X, Y)
    report = gradcheck.check(params, partial, X, Y, partial=True)
    assert report.to_dict()["not_given"] == ["W3"]
    with pytest.raises(gradcheck.GradcheckError, match="directional check"):
        gradcheck.check(params, grads, X, Y, directions=4, method="delta")
    with pytest.raises(gradcheck.GradcheckError, match="unknown keyword"):
        gradcheck.check(params, grads, X, Y, samples=10)


def test_two_files_as_cs231n_saves_them(tmp_path):
    params, grads, X, Y = exercise()
    np.savez(tmp_path / "net.npz", X=X, Y=Y, **params)
    np.savez(tmp_path / "grads.npz", **{k[1:]: v for k, v in grads.items()})
    report = gradcheck.check_npz(tmp_path / "net.npz", grads=tmp_path / "grads.npz")
    assert report.passed, str(report)
    np.savez(tmp_path / "both.npz", X=X, Y=Y, **params, **grads)
    with pytest.raises(gradcheck.GradcheckError, match="keep one source"):
        gradcheck.check_npz(tmp_path / "both.npz", grads=tmp_path / "grads.npz")


def test_progress_is_reported_to_a_function():
    params, grads, X, Y = exercise()
    seen = []
    gradcheck.check(params, grads, X, Y, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] > 0
    assert gradcheck.check(params, grads, X, Y, progress=False).passed


def test_the_report_gives_objects_and_says_why_it_is_undecided():
    params, grads, X, Y = exercise()
    report = gradcheck.check(params, grads, X, Y)
    c = report.worst[0]
    assert isinstance(c, gradcheck.Coordinate) and c.name and c.verdict == "pass"
    t = report.tensors[0]
    assert isinstance(t, gradcheck.Tensor) and t.checked > 0 and t.failing == 0
    # A threshold below what the evaluation resolves: undecided, and why.
    undecided = gradcheck.check(params, grads, X, Y, threshold=1e-16)
    assert undecided.verdict == "inconclusive"
    assert undecided.reason
    reasons = [t.reason for t in undecided.tensors if t.verdict == "inconclusive"]
    assert reasons and all(reasons)
    html = undecided._repr_html_()
    assert "undecided:" in html and "why:" in html


def test_mesa_device_select_is_silenced():
    assert os.environ.get("NODEVICE_SELECT") == "1"
