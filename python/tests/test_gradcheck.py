"""The Python entry point: the course's dicts, cs231n's two-layer net, float32 gradients,
every error class, Ctrl-C, and the same results as the command line's JSON."""

import _thread
import json
import os
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import gradcheck
from helpers import binary

ROOT = Path(__file__).resolve().parents[2]
EXERCISE = ROOT / "assets" / "exercise_buggy_backprop.npz"


def exercise():
    d = dict(np.load(EXERCISE))
    params = {k: d[k] for k in d if k[0] in "Wb"}
    grads = {k: d[k] for k in d if k.startswith("d")}
    return params, grads, d["X"], d["Y"]


def test_the_exercise_dicts_fail_on_w2_and_b1():
    params, grads, X, Y = exercise()
    report = gradcheck.check(params, grads, X, Y)
    assert report.verdict == "fail" and not report.passed
    assert round(report.difference, 7) == 0.2850931
    failing = [t.name for t in report.tensors if t.verdict == "fail"]
    assert failing == ["b1", "W2"]
    ratios = {t.name: t.ratio for t in report.tensors}
    assert ratios["W2"] == pytest.approx(2.0) and ratios["b1"] == pytest.approx(4.0)
    assert "W2" in str(report) and "FAIL" in str(report)
    html = report._repr_html_()
    assert "background:#fdd" in html and "W2" in html
    assert report.worst[0].name.startswith(("b1", "W2"))


def test_the_fixed_exercise_passes():
    params, grads, X, Y = exercise()
    grads = dict(grads, dW2=grads["dW2"] / 2, db1=grads["db1"] / 4)
    report = gradcheck.check(params, grads, X, Y)
    assert report.passed, str(report)
    assert report.difference < 1e-9


def two_layer_net(seed=0, N=5, D=4, H=10, C=3, reg=0.05):
    """cs231n's TwoLayerNet: rows, integer labels, softmax, 0.5·reg·ΣW² (dW += reg·W)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    y = rng.integers(0, C, N)
    params = {"W1": 0.1 * rng.standard_normal((D, H)), "b1": 0.1 * rng.standard_normal(H),
              "W2": 0.1 * rng.standard_normal((H, C)), "b2": 0.1 * rng.standard_normal(C)}

    def grads(bug=None):
        h = np.maximum(0, X @ params["W1"] + params["b1"])
        s = h @ params["W2"] + params["b2"]
        p = np.exp(s - s.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        ds = p.copy()
        ds[np.arange(N), y] -= 1
        ds /= N
        g = {"W2": h.T @ ds + (0 if bug == "reg" else reg * params["W2"]), "b2": ds.sum(0)}
        dh = ds @ params["W2"].T
        if bug != "mask":
            dh[h <= 0] = 0
        g["W1"] = X.T @ dh + reg * params["W1"]
        g["b1"] = dh.sum(0)
        return g

    return params, grads, X, y, reg * N


def test_a_cs231n_two_layer_net_in_rows_with_softmax_and_reg():
    params, grads, X, y, l2 = two_layer_net()
    ok = gradcheck.check(params, grads(), X, y, loss="softmax", l2=l2)
    assert ok.passed, str(ok)
    assert ok.to_dict()["layout"] == "rows"
    assert ok.difference < 1e-8  # cs231n's bar for a two-layer net is ~1e-7
    forgot_reg = gradcheck.check(params, grads("reg"), X, y, loss="softmax", l2=l2)
    assert [t.name for t in forgot_reg.tensors if t.verdict == "fail"] == ["W2"]
    no_mask = gradcheck.check(params, grads("mask"), X, y, loss="softmax", l2=l2)
    assert {t.name for t in no_mask.tensors if t.verdict == "fail"} == {"W1", "b1"}


def test_float32_gradients_are_judged_as_float32():
    params, grads, X, Y = exercise()
    fixed = dict(grads, dW2=grads["dW2"] / 2, db1=grads["db1"] / 4)
    single = {k: v.astype(np.float32) for k, v in fixed.items()}
    report = gradcheck.check(params, single, X, Y)
    assert report.to_dict()["grad_precision"] == "f32"
    assert report.verdict != "fail", str(report)
    single["dW3"] = single["dW3"] * np.float32(1.01)
    buggy = gradcheck.check(params, single, X, Y)
    assert [t.name for t in buggy.tensors if t.verdict == "fail"] == ["W3"]


def test_arrays_the_check_does_not_use_are_named():
    params, grads, X, Y = exercise()
    report = gradcheck.check(dict(params, A1=np.ones((5, 3))), grads, X, Y)
    assert "not used: A1" in report.to_dict()["warnings"]


def test_dropout_masks_from_a_list():
    params, grads, X, Y = exercise()
    rng = np.random.default_rng(4)
    masks = [(rng.random((5, 3)) < 0.8).astype(float), (rng.random((3, 3)) < 0.8).astype(float)]
    # The exercise's gradients were computed without dropout: the check must see it.
    report = gradcheck.check(params, grads, X, Y, keep_prob=0.8, masks=masks)
    assert report.verdict == "fail"
    assert "dropout keep_prob=0.8" in str(report)


def test_any_memory_order_and_integer_labels():
    params, grads, X, Y = exercise()
    fortran = {k: np.asfortranarray(v) for k, v in params.items()}
    strided = {k: np.repeat(v, 2, axis=0)[::2] for k, v in grads.items()}
    report = gradcheck.check(fortran, strided, X, Y.astype(np.int64))
    assert round(report.difference, 7) == 0.2850931


@pytest.mark.parametrize("change, message", [
    (lambda p, g, X, Y: (p, {k: v for k, v in g.items() if k != "dW3"}, X, Y),
     "gradients missing for dW3"),
    (lambda p, g, X, Y: ({k: v for k, v in p.items() if k != "b2"}, g, X, Y),
     "missing array 'b2'"),
    (lambda p, g, X, Y: (p, g, X[:3], Y), "shape mismatch"),
    (lambda p, g, X, Y: (dict(p, W1=np.where(p["W1"] > 0, np.nan, p["W1"])), g, X, Y),
     "non-finite"),
    (lambda p, g, X, Y: (p, g, X, Y * 2), "labels must lie in [0, 1]"),
    (lambda p, g, X, Y: (p, dict(g, dW1=g["dW1"].T), X, Y), "shape mismatch"),
    (lambda p, g, X, Y: (p, dict(g, dW9=g["dW1"]), X, Y), "no matching layer"),
    (lambda p, g, X, Y: (p, g, X.astype(np.complex128), Y), "unsupported dtype"),
])
def test_bad_input_raises_the_command_line_message(change, message):
    args = change(*exercise())
    with pytest.raises(gradcheck.GradcheckError) as error:
        gradcheck.check(*args)
    assert message in str(error.value)
    assert isinstance(error.value, ValueError)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("keywords, message", [
    ({"loss": "hinge"}, "loss"),
    ({"hidden": "swish"}, "unknown activation"),
    ({"method": "fast"}, "method"),
    ({"eps": 1.0}, "does not approximate a derivative"),
    ({"keep_prob": 0.8}, "D1"),
    ({"loss": "softmax"}, "softmax over one output unit"),
    ({"masks": [np.ones((5, 3)), np.ones((3, 3))]}, "keep_prob"),
])
def test_bad_options_raise(keywords, message):
    with pytest.raises(gradcheck.GradcheckError) as error:
        gradcheck.check(*exercise(), **keywords)
    assert message in str(error.value)


def random_net(widths, m, seed):
    """A He-initialised network in the course's layout, zero gradients, random data."""
    rng = np.random.default_rng(seed)
    params = {}
    for i, (a, b) in enumerate(zip(widths, widths[1:]), 1):
        params[f"W{i}"] = rng.standard_normal((b, a)) * np.sqrt(2 / a)
        params[f"b{i}"] = np.zeros((b, 1))
    grads = {"d" + k: np.zeros_like(v) for k, v in params.items()}
    X = rng.standard_normal((widths[0], m))
    Y = (rng.random((1, m)) > 0.5).astype(float)
    return params, grads, X, Y


def test_ctrl_c_interrupts_a_running_check():
    params, grads, X, Y = random_net([256, 64, 32, 1], 64, 1)
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        # The full method on the CPU: tens of seconds, unless interrupted.
        gradcheck.check(params, grads, X, Y, method="full", device="cpu")
    timer.cancel()


def test_the_gil_is_released_during_a_check():
    params, grads, X, Y = random_net([128, 64, 32, 1], 64, 2)
    done = []
    worker = threading.Thread(target=lambda: done.append(
        gradcheck.check(params, grads, X, Y, method="full", device="cpu")))
    worker.start()
    ticks = 0
    while worker.is_alive():
        ticks += 1  # Python code runs while the check does: the GIL is free
    worker.join()
    assert done and done[0].verdict == "fail"  # zero gradients
    assert ticks > 1000


def cli_json(path, *args):
    out = subprocess.run([binary(), "check", str(path), "--json", "-", *args],
                         capture_output=True, text=True, env=dict(os.environ, NODEVICE_SELECT="1"))
    assert out.returncode in (0, 1, 3), out.stderr
    return json.loads(out.stdout)


def comparable(report):
    """The JSON without what differs between two runs (time, the title naming the caller)."""
    return {k: v for k, v in report.items() if k not in ("timing", "title")}


def test_results_equal_the_command_lines_json(tmp_path):
    params, grads, X, Y = exercise()
    python = gradcheck.check(params, grads, X, Y, device="cpu").to_dict()
    cli = cli_json(EXERCISE, "--device", "cpu")
    python["gradients"] = cli["gradients"]  # "gradients from the grads dict" vs the file
    assert comparable(python) == comparable(cli)

    P, G, X2, y, l2 = two_layer_net(seed=3)
    path = tmp_path / "cs231n.npz"
    g = G()
    np.savez(path, X=X2, Y=y, **P, **{f"d{k}": v for k, v in g.items()},
             gradcheck=f"loss=softmax l2={l2}")
    from_file = gradcheck.check_npz(path, device="cpu").to_dict()
    assert comparable(from_file) == comparable(cli_json(path, "--device", "cpu"))
    assert from_file["verdict"] == "pass"


def test_float16_arrays_are_refused_by_name_as_the_command_line_refuses_them():
    params, grads, X, Y = exercise()
    half = dict(grads, dW1=grads["dW1"].astype(np.float16))
    with pytest.raises(gradcheck.GradcheckError, match="dW1.*float16"):
        gradcheck.check(params, half, X, Y)
    with pytest.raises(gradcheck.GradcheckError, match="X.*float16"):
        gradcheck.check(params, grads, X.astype(np.float16), Y)


def test_a_normalisation_layers_parameters_are_refused_not_dropped():
    params, grads, X, Y = exercise()
    params = dict(params, gamma1=np.ones((5, 1)), beta1=np.zeros((5, 1)))
    with pytest.raises(gradcheck.GradcheckError, match="gamma1.*normalisation"):
        gradcheck.check(params, grads, X, Y)
    params, grads, X, Y = exercise()
    grads = dict(grads, dgamma1=np.ones((5, 1)))
    with pytest.raises(gradcheck.GradcheckError, match="dgamma1"):
        gradcheck.check(params, grads, X, Y)


def test_intermediate_gradients_in_grads_are_noted_and_left_out():
    params, grads, X, Y = exercise()
    grads = dict(grads, dW2=grads["dW2"] / 2, db1=grads["db1"] / 4)
    grads.update(dZ1=np.zeros((5, 3)), dA1=np.zeros((5, 3)))
    report = gradcheck.check(params, grads, X, Y)
    assert report.passed, str(report)
    assert any("dA1" in w and "dZ1" in w for w in report.to_dict()["warnings"])


def test_float32_gradients_saved_as_float64_are_judged_as_float32():
    params, grads, X, Y = exercise()
    grads = dict(grads, dW2=grads["dW2"] / 2, db1=grads["db1"] / 4)
    f32 = {k: v.astype(np.float32) for k, v in params.items()}
    X32 = X.astype(np.float32)

    # A float32 backprop of the exercise, then saved as float64 (the obvious workaround).
    def relu(z):
        return np.maximum(z, np.float32(0))

    m = np.float32(X.shape[1])
    z1 = f32["W1"] @ X32 + f32["b1"]
    a1 = relu(z1)
    z2 = f32["W2"] @ a1 + f32["b2"]
    a2 = relu(z2)
    z3 = f32["W3"] @ a2 + f32["b3"]
    a3 = np.float32(1) / (np.float32(1) + np.exp(-z3))
    dz3 = (a3 - Y.astype(np.float32)) / m
    dz2 = (f32["W3"].T @ dz3) * (z2 > 0)
    dz1 = (f32["W2"].T @ dz2) * (z1 > 0)
    single = {"dW3": dz3 @ a2.T, "db3": dz3.sum(1, keepdims=True),
              "dW2": dz2 @ a1.T, "db2": dz2.sum(1, keepdims=True),
              "dW1": dz1 @ X32.T, "db1": dz1.sum(1, keepdims=True)}
    as64 = {k: v.astype(np.float64) for k, v in single.items()}
    p32 = {k: v.astype(np.float64) for k, v in f32.items()}
    report = gradcheck.check(p32, as64, X32.astype(np.float64), Y)
    data = report.to_dict()
    assert data["grad_precision"] == "f32", str(report)
    assert "every value of the float64 gradient arrays is a float32" in data["grad_precision_reason"]
    assert report.verdict != "fail", str(report)
    forced = gradcheck.check(p32, as64, X32.astype(np.float64), Y, grad_precision="f64")
    assert forced.to_dict()["grad_precision"] == "f64"
