"""Networks of ops, timed side by side in one run: gradcheck's check of every coordinate
against cs231n's own `eval_numerical_gradient` (a numpy loop, two loss evaluations per
coordinate, step 1e-5) on the same network and data.

    python benches/networks.py            # prints the table, writes networks.json

The networks: cs231n's ThreeLayerConvNet at the notebook's size (N = 2, 3×16×16, 3
filters 3×3, hidden 7) and a FullyConnectedNet with batchnorm (the notebook's 2, 15, 20,
30, 10; and N = 20, 50-50-50-10)."""

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python" / "tests"))
import gradcheck  # noqa: E402
from test_networks import CONVNET, fc_net_loss, init, three_layer_convnet_loss  # noqa: E402


def eval_numerical_gradient(f, x, h=1e-5):
    """cs231n's gradient_check.eval_numerical_gradient (its loop, without the prints)."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        fxph = f(x)
        x[ix] = old - h
        fxmh = f(x)
        x[ix] = old
        grad[ix] = (fxph - fxmh) / (2 * h)
        it.iternext()
    return grad


def numpy_loop(cost, params):
    start = time.perf_counter()
    for name in params:
        eval_numerical_gradient(lambda _: cost(params), params[name])
    return time.perf_counter() - start


def row(label, params, grads, cost, **kwargs):
    start = time.perf_counter()
    report = gradcheck.check(params, grads, **kwargs)
    ours = time.perf_counter() - start
    theirs = numpy_loop(cost, params)
    n = sum(v.size for v in params.values())
    return dict(network=label, params=n, gradcheck_s=ours, numpy_loop_s=theirs,
                verdict=report.verdict, difference=report.difference)


def main():
    rng = np.random.default_rng(0)
    rows = []
    N, C, H, W, F, hidden, classes, reg = 2, 3, 16, 16, 3, 7, 10, 0.01
    X, y = rng.standard_normal((N, C, H, W)), rng.integers(0, classes, N)
    params = {"W1": 1e-1 * rng.standard_normal((F, C, 3, 3)), "b1": np.zeros(F),
              "W2": 1e-1 * rng.standard_normal((F * H * W // 4, hidden)), "b2": np.zeros(hidden),
              "W3": 1e-1 * rng.standard_normal((hidden, classes)), "b3": np.zeros(classes)}
    _, grads = three_layer_convnet_loss(params, X, y, reg)
    rows.append(row("ThreeLayerConvNet, notebook size (N=2, 3x16x16, 3 filters 3x3, hidden 7)",
                    params, grads, lambda p: three_layer_convnet_loss(p, X, y, reg)[0],
                    X=X, y=y, loss="softmax", weight_l2=reg / 2, layers=CONVNET))
    for (N, dims) in ((2, [15, 20, 30, 10]), (20, [50, 50, 50, 10])):
        X, y = rng.standard_normal((N, dims[0])), rng.integers(0, dims[-1], N)
        params = init(dims, "batchnorm")
        _, grads = fc_net_loss(params, X, y, "batchnorm", 3.14)
        rows.append(row(f"FullyConnectedNet batchnorm {'-'.join(map(str, dims))}, N={N}",
                        params, grads,
                        lambda p: fc_net_loss(p, X, y, "batchnorm", 3.14)[0],
                        X=X, y=y, loss="softmax", weight_l2=3.14 / 2,
                        normalization="batchnorm"))
    print("| network | params | numpy loop (cs231n) | gradcheck | verdict |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['network']} | {r['params']:,} | {r['numpy_loop_s']:.3f} s | "
              f"{r['gradcheck_s']:.3f} s | {r['verdict']} |")
    Path(__file__).with_name("networks.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
