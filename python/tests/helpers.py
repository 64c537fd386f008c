"""What several test files share: the command-line binary and the exercise's arrays."""

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXERCISE = ROOT / "assets" / "exercise_buggy_backprop.npz"


def binary():
    """The binary the module's results are compared with (GRADCHECK_BIN, else cargo's)."""
    path = Path(os.environ.get("GRADCHECK_BIN", ROOT / "target" / "release" / "gradcheck"))
    if not path.exists():
        pytest.fail(f"{path} not built: run cargo build --release (or set GRADCHECK_BIN)")
    return path


def exercise(fixed=True):
    """The exercise's parameters, gradients (its bugs undone when `fixed`), X and Y."""
    d = dict(np.load(EXERCISE))
    params = {k: d[k] for k in d if k[0] in "Wb"}
    grads = {k: d[k] for k in d if k.startswith("d")}
    if fixed:
        grads = dict(grads, dW2=grads["dW2"] / 2, db1=grads["db1"] / 4)
    return params, grads, d["X"], d["Y"]
