"""The peers of `gradcheck bench`, on the same networks, every coordinate, f64.

Reads networks written by `gradcheck export` (X, Y, W1, b1, ..., dW1, db1, ...) and times:

  numpy-loop   the exercise's algorithm: one coordinate at a time, two forward passes each
  jax-vmap     JAX, jit + vmap: batched central differences (a batch of perturbed theta
               vectors per call)
  torch-full   torch.autograd.gradcheck (numerical Jacobian column by column vs backward)
  torch-fast   torch.autograd.gradcheck(fast_mode=True): one random directional derivative

Every peer uses the exercise's step 1e-6 and reports the exercise's difference against the
backprop gradients in the file (numpy-loop, jax-vmap), or gradcheck's own pass/fail (torch).
Sizes whose time, predicted from the previous size (full methods scale as P^2 m; only a
measurement of 0.5 s or more predicts), exceeds --max-seconds are skipped and listed. Each
peer first runs once, untimed, on the smallest network (imports, runtime start-up).

Not part of CI or the test command. Usage, from the repository root:

    python -m venv /tmp/peers && /tmp/peers/bin/pip install numpy "jax[cpu]" torch
    for spec in "4,5,3,1 3" "64,32,16,1 64" "256,64,32,1 64" "784,128,64,1 64"; do
        set -- $spec
        cargo run --release -- export --layers $1 --examples $2 -o /tmp/net_$1.npz
    done
    /tmp/peers/bin/python benches/peers/peers.py /tmp/net_*.npz --json benches/peers/results.json
"""

import argparse
import json
import platform
import sys
import time

import numpy as np

EPS = 1e-6


def load(path):
    data = np.load(path)
    layers = 1
    while f"W{layers + 1}" in data:
        layers += 1
    ws = [np.asarray(data[f"W{l}"], dtype=np.float64) for l in range(1, layers + 1)]
    bs = [np.asarray(data[f"b{l}"], dtype=np.float64).reshape(-1, 1) for l in range(1, layers + 1)]
    x = np.asarray(data["X"], dtype=np.float64)
    y = np.asarray(data["Y"], dtype=np.float64).reshape(ws[-1].shape[0], -1)
    grads = None
    if "dW1" in data:
        grads = np.concatenate(
            [np.concatenate([np.ravel(data[f"dW{l}"]), np.ravel(data[f"db{l}"])]) for l in range(1, layers + 1)]
        )
    return ws, bs, x, y, grads


def flatten(ws, bs):
    return np.concatenate([np.concatenate([w.ravel(), b.ravel()]) for w, b in zip(ws, bs)])


def shapes_of(ws):
    return [w.shape for w in ws]


def make_cost(shapes, x, y, relu, softplus):
    """The exercise's forward pass and cost (stable form: softplus(z) - y z) of a flat
    parameter vector, for any array library with slicing, reshape, @ and .sum()."""

    def cost(t):
        a, at = x, 0
        for l, (rows, cols) in enumerate(shapes):
            w = t[at : at + rows * cols].reshape(rows, cols)
            at += rows * cols
            b = t[at : at + rows].reshape(rows, 1)
            at += rows
            z = w @ a + b
            a = relu(z) if l < len(shapes) - 1 else z
        return (softplus(a) - y * a).sum() / x.shape[1]

    return cost


def difference(grad, approx):
    return float(np.linalg.norm(grad - approx) / (np.linalg.norm(grad) + np.linalg.norm(approx)))


def numpy_loop(ws, bs, x, y, grads):
    theta = flatten(ws, bs)
    cost = make_cost(shapes_of(ws), x, y, lambda z: np.maximum(z, 0.0), lambda z: np.logaddexp(0.0, z))
    approx = np.zeros_like(theta)
    for i in range(theta.size):
        plus = theta.copy()
        plus[i] += EPS
        minus = theta.copy()
        minus[i] -= EPS
        approx[i] = (cost(plus) - cost(minus)) / (2 * EPS)
    return difference(grads, approx)


def jax_vmap(ws, bs, x, y, grads):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    theta = jnp.asarray(flatten(ws, bs))
    cost = make_cost(
        shapes_of(ws), jnp.asarray(x), jnp.asarray(y), lambda z: jnp.maximum(z, 0.0), lambda z: jnp.logaddexp(0.0, z)
    )

    n = theta.size
    batch = max(1, min(n, (1 << 26) // n))  # ~0.5 GB of perturbed vectors per call

    @jax.jit
    def central(indices):
        steps = jax.nn.one_hot(indices, n, dtype=theta.dtype) * EPS
        plus = jax.vmap(cost)(theta[None, :] + steps)
        minus = jax.vmap(cost)(theta[None, :] - steps)
        return (plus - minus) / (2 * EPS)

    parts = []
    for start in range(0, n, batch):
        idx = jnp.arange(start, start + batch) % n  # fixed shape: one compilation
        parts.append(np.asarray(central(idx)))
    approx = np.concatenate(parts)[:n]
    return difference(grads, approx)


def torch_gradcheck(ws, bs, x, y, grads, fast):
    import torch

    theta = torch.tensor(flatten(ws, bs), dtype=torch.float64, requires_grad=True)
    cost = make_cost(shapes_of(ws), torch.tensor(x), torch.tensor(y), torch.relu, torch.nn.functional.softplus)

    ok = torch.autograd.gradcheck(cost, (theta,), eps=EPS, atol=1e-5, rtol=1e-3, fast_mode=fast)
    return "pass" if ok else "fail"


PEERS = {
    "numpy-loop": lambda *a: numpy_loop(*a),
    "jax-vmap": lambda *a: jax_vmap(*a),
    "torch-full": lambda *a: torch_gradcheck(*a, fast=False),
    "torch-fast": lambda *a: torch_gradcheck(*a, fast=True),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="npz files from `gradcheck export`")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma list of " + ", ".join(PEERS))
    parser.add_argument("--max-seconds", type=float, default=400.0)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()

    nets = sorted((load(f) + (f,) for f in args.files), key=lambda n: flatten(n[0], n[1]).size)
    rows, skipped = [], []
    for peer in args.peers.split(","):
        # Untimed warm-up on the smallest network: imports and runtime start-up are paid
        # once per session, not per check.
        ws, bs, x, y, grads, _ = nets[0]
        PEERS[peer](ws, bs, x, y, grads)
        previous = None
        for ws, bs, x, y, grads, path in nets:
            params, m = flatten(ws, bs).size, x.shape[1]
            if previous is not None and previous[2] >= 0.5:
                p0, m0, t0 = previous
                predicted = t0 * (params / p0) ** 2 * (m / m0)
                if predicted > args.max_seconds:
                    skipped.append({"peer": peer, "params": params, "predicted_seconds": predicted})
                    print(f"skip {peer} at {params}: predicted {predicted:.0f} s", file=sys.stderr)
                    continue
            start = time.perf_counter()
            result = PEERS[peer](ws, bs, x, y, grads)
            seconds = time.perf_counter() - start
            previous = (params, m, seconds)
            row = {"peer": peer, "params": params, "examples": m, "file": path, "seconds": seconds, "result": result}
            rows.append(row)
            print(f"{peer:>10} {params:>9} params  {seconds:9.3f} s  {result}", file=sys.stderr, flush=True)
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("jax", "torch"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    out = {"machine": platform.platform(), "processor": platform.processor(), "versions": versions, "rows": rows, "skipped": skipped}
    print("| peer | params | m | seconds | result |\n|---|---:|---:|---:|---|")
    for r in rows:
        result = r["result"] if isinstance(r["result"], str) else f"difference {r['result']:.2e}"
        print(f"| {r['peer']} | {r['params']} | {r['examples']} | {r['seconds']:.3f} | {result} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
