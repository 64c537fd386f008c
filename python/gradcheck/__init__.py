"""Check the gradients a numpy notebook holds against finite differences.

    import gradcheck
    report = gradcheck.check(parameters, grads, X, Y)          # the course's dicts
    report = gradcheck.check(model.params, grads, X, y,        # cs231n's two-layer net
                             loss="softmax", l2=reg * X.shape[0])
    print(report)            # the command line's table
    report.passed, report.verdict, report.worst, report.to_dict()

The same model and options as the command line (``gradcheck check --help``), in Python
style; the work runs in the Rust library (on the GPU where there is one), with the GIL
released and Ctrl-C honoured.
"""

import json
from html import escape

import numpy as np

from ._native import GradcheckError
from ._native import check_arrays as _check_arrays
from ._native import check_npz as _check_npz

__all__ = ["check", "check_npz", "Report", "GradcheckError"]


def _as_array(name, value):
    """float32 stays float32 (judged as float32 gradients), float64 as it is, integers and
    bools become float64; any other dtype (float16, longdouble, complex, object) is
    refused, as the command line refuses it: converting it would judge numbers that
    were never computed."""
    a = np.asarray(value)
    if a.dtype == np.float32:
        return a
    if a.dtype == np.float64:
        return a
    if a.dtype.kind not in "iub":
        raise GradcheckError(
            f"array '{name}' has unsupported dtype {a.dtype}; "
            "use float64, float32, integer or bool arrays"
        )
    return np.asarray(a, dtype=np.float64)


def _settings(**model):
    """The model keywords as the settings line the library reads (None: unset)."""
    words = []
    for key, value in model.items():
        if value is None:
            continue
        if key == "hidden" and not isinstance(value, str):
            value = ",".join(value)
        if key == "layout" and value == "auto":
            continue
        words.append(f"{key}={value}")
    return " ".join(words)


def check(parameters, grads, X, Y, *, hidden="relu", loss="bce", l2=0.0,
          keep_prob=None, masks=None, layout="auto", reduction="mean", eps=None,
          threshold=None, method=None, device="auto", precision="auto",
          grad_precision=None):
    """Checks ``grads`` (``dW1, db1, …`` as the course names them, or ``W1, b1, …`` as
    cs231n does) against finite differences of the network ``parameters`` (``W1, b1, …``)
    on ``X`` and ``Y``.

    The model: ``hidden`` (``"relu"``, ``"leaky_relu"``, ``"leaky_relu:0.2"``, ``"tanh"``,
    ``"sigmoid"``, ``"identity"``, or a list, one per hidden layer), ``loss`` (``"bce"``,
    ``"softmax"``, ``"mse"``), ``reduction`` (``"mean"``, ``"sum"``), ``l2`` (adds
    ``l2/(2m)·Σ‖W‖²``), ``keep_prob`` with ``masks`` (``[D1, D2, …]`` or ``{"D1": …}``: the
    masks your forward pass drew), ``layout`` (``"columns"``, ``"rows"``, ``"auto"``).
    The check: ``eps``, ``threshold``, ``method`` (``"delta"``, ``"full"``), ``device``
    (``"auto"``, ``"gpu"``, ``"cpu"``), ``precision`` (``"auto"``, ``"f32"``, ``"f64"``),
    ``grad_precision`` (``"f32"`` for float32 gradients saved as float64).

    Returns a :class:`Report`; bad input raises :class:`GradcheckError`.
    """
    arrays = {"X": _as_array("X", X), "Y": _as_array("Y", Y)}
    for name, value in dict(parameters).items():
        arrays[name] = _as_array(name, value)
    if masks is not None and keep_prob is None:
        raise GradcheckError("dropout masks need the keep_prob they were drawn with")
    if masks is not None:
        items = masks.items() if isinstance(masks, dict) else (
            (f"D{i + 1}", m) for i, m in enumerate(masks))
        for name, value in items:
            arrays[name] = _as_array(name, value)
    gradients = {name: _as_array(name, value) for name, value in dict(grads).items()}
    settings = _settings(hidden=hidden, loss=loss, reduction=reduction, l2=l2,
                         keep_prob=keep_prob, layout=layout)
    options = dict(eps=eps, threshold=threshold, method=method, device=device,
                   precision=precision, grad_precision=grad_precision)
    data, text = _check_arrays(arrays, gradients, settings, options)
    return Report(json.loads(data), text)


def check_npz(path, *, hidden=None, loss=None, l2=None, keep_prob=None, layout=None,
              reduction=None, eps=None, threshold=None, method=None, device="auto",
              precision="auto", grad_precision=None):
    """Checks the gradients an npz file holds, as ``gradcheck check FILE`` does; the model
    keywords override the file's own settings (its ``gradcheck`` array)."""
    settings = _settings(hidden=hidden, loss=loss, reduction=reduction, l2=l2,
                         keep_prob=keep_prob, layout=layout)
    options = dict(eps=eps, threshold=threshold, method=method, device=device,
                   precision=precision, grad_precision=grad_precision)
    data, text = _check_npz(str(path), settings, options)
    return Report(json.loads(data), text)


class Tensor:
    """One tensor's share of the verdict."""

    def __init__(self, data):
        self._data = data
        self.name = data["name"]
        self.verdict = data["verdict"]
        self.difference = data["difference"]
        self.ratio = data.get("ratio")
        self.diagnosis = data.get("diagnosis")
        self.shape = tuple(data["shape"])

    def __repr__(self):
        return f"Tensor({self.name}, {self.verdict}, difference={self.difference:.3e})"


class Report:
    """A check's verdict: ``pass``, ``fail`` or ``inconclusive``, globally and per tensor."""

    def __init__(self, data, text):
        self._data = data
        self._text = text
        self.verdict = data["verdict"]
        self.passed = self.verdict == "pass"
        self.difference = data["difference"]
        self.tensors = [Tensor(t) for t in data["tensors"]]
        self.worst = data["worst"]

    def to_dict(self):
        """The report as the command line's ``--json`` writes it."""
        return json.loads(json.dumps(self._data))

    def __str__(self):
        return self._text

    def __repr__(self):
        return f"<gradcheck.Report {self.verdict} difference={self.difference:.3e}>"

    def _repr_html_(self):
        rows = []
        for t in self.tensors:
            style = ' style="background:#fdd"' if t.verdict == "fail" else (
                ' style="background:#ffd"' if t.verdict == "inconclusive" else "")
            ratio = "" if t.ratio is None else f"{t.ratio:.4f}"
            rows.append(
                f"<tr{style}><td>{escape(t.name)}</td><td>{escape(str(t.shape))}</td>"
                f"<td>{t.difference:.3e}</td><td>{ratio}</td><td>{escape(t.verdict)}</td>"
                f"<td>{escape(t.diagnosis or '')}</td></tr>")
        return (
            f"<p><b>{escape(self.verdict.upper())}</b> difference {self.difference:.3e}</p>"
            "<table><tr><th>tensor</th><th>shape</th><th>difference</th><th>ratio</th>"
            "<th>verdict</th><th>diagnosis</th></tr>" + "".join(rows) + "</table>")
