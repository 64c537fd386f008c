"""The mistakes people make saving their arrays, each answered with what was found and the
likely fix, by the command line and by the module alike."""

import pickle
import subprocess

import numpy as np
import pytest

import gradcheck

from helpers import binary, exercise


def cli(path, *args):
    out = subprocess.run([binary(), "check", str(path), *args], capture_output=True,
                         text=True)
    return out.returncode, out.stdout + out.stderr


def course():
    return exercise()


def test_pickled_dicts_in_an_npz_are_named_with_the_fix(tmp_path):
    params, grads, X, Y = course()
    path = tmp_path / "net.npz"
    np.savez(path, X=X, Y=Y, params=params, grads=grads)
    code, text = cli(path)
    assert code == 2
    assert "the input holds X, Y, grads, params" in text, text
    assert "pickled" in text and "**params" in text, text


def test_a_pickle_file_is_named_as_one(tmp_path):
    params, grads, X, Y = course()
    path = tmp_path / "net.pkl"
    with open(path, "wb") as f:
        pickle.dump({"X": X, "Y": Y, **params, **grads}, f)
    code, text = cli(path)
    assert code == 2 and "is a Python pickle" in text and "np.savez" in text, text


def test_a_transposed_weight_or_gradient_is_asked_about(tmp_path):
    params, grads, X, Y = course()
    path = tmp_path / "t.npz"
    np.savez(path, X=X, Y=Y, **dict(params, W1=params["W1"].T), **grads)
    code, text = cli(path)
    assert code == 2 and "W1 transposed?" in text, text
    np.savez(path, X=X, Y=Y, **params, **dict(grads, dW2=grads["dW2"].T))
    code, text = cli(path)
    assert code == 2 and "transposed?" in text, text
    with pytest.raises(gradcheck.GradcheckError, match="transposed"):
        gradcheck.check(params, dict(grads, dW2=grads["dW2"].T), X, Y)


def test_class_labels_without_softmax_name_softmax(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 4))
    y = rng.integers(0, 3, 6)
    params = {"W1": rng.standard_normal((4, 5)), "b1": np.zeros(5),
              "W2": rng.standard_normal((5, 3)), "b2": np.zeros(3)}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    with pytest.raises(gradcheck.GradcheckError, match="class indices.*softmax"):
        gradcheck.check(params, grads, X, y=y)
    path = tmp_path / "c.npz"
    np.savez(path, X=X, y=y, **params, **{f"d{k}": v for k, v in grads.items()})
    code, text = cli(path)
    assert code == 2 and "softmax" in text, text


def test_lowercase_labels_and_masks_divided_by_keep_prob_from_a_file(tmp_path):
    params, grads, X, Y = course()
    path = tmp_path / "y.npz"
    np.savez(path, X=X, y=Y, **params, **grads)
    code, text = cli(path)
    assert code == 0, text
    np.savez(path, X=X, y=Y, Y=Y, **params, **grads)
    code, text = cli(path)
    assert code == 2 and "both Y and y" in text, text


def test_masks_without_a_keep_probability_are_named(tmp_path):
    params, grads, X, Y = course()
    path = tmp_path / "d.npz"
    np.savez(path, X=X, Y=Y, D1=np.ones((5, 3)), D2=np.ones((3, 3)), **params, **grads)
    code, text = cli(path)
    assert code == 2 and "D1, D2 look like dropout masks" in text, text


def test_layer_named_arrays_in_a_file_get_the_naming_rule(tmp_path):
    params, grads, X, Y = course()
    path = tmp_path / "n.npz"
    np.savez(path, X=X, Y=Y, dense1_weights=params["W1"], dense1_biases=params["b1"])
    code, text = cli(path)
    assert code == 2 and "name the layers' arrays W1, b1" in text, text


def test_more_saving_mistakes_are_answered_with_the_fix(tmp_path):
    params, grads, X, Y = course()
    cases = [
        # X saved with examples in rows for a columns network
        (dict(X=X.T, Y=Y, **params, **grads), [], "X transposed?"),
        # layers numbered from 0
        ({"X": X, "Y": Y, **{k[0] + str(int(k[1:]) - 1): v for k, v in params.items()},
          **{"d" + k[0] + str(int(k[1:]) - 1): grads["d" + k] for k in params}},
         [], "numbered from 1"),
        # dropout asked for without the masks
        (dict(X=X, Y=Y, **params, **grads), ["--keep-prob", "0.8"],
         "missing dropout masks: D1 is not in the input"),
        # the course's flat vectors instead of the dicts
        (dict(X=X, Y=Y, **params, grad=np.ones((47, 1))), [], "save the grads dict itself"),
        (dict(X=X, Y=Y, parameters_values=np.ones((47, 1)), grad=np.ones((47, 1))), [],
         "dictionary_to_vector"),
    ]
    for k, (arrays, flags, message) in enumerate(cases):
        path = tmp_path / f"case{k}.npz"
        np.savez(path, **arrays)
        code, text = cli(path, *flags)
        assert code == 2 and message in text, (message, text)
        assert "\n" not in text.strip(), text
    # masks under another spelling are named as masks
    path = tmp_path / "lower.npz"
    np.savez(path, X=X, Y=Y, **params, **grads, d1=np.ones((5, X.shape[1])))
    code, text = cli(path)
    assert "d1 looks like a dropout mask: name it D1" in text, text
