"""Check the gradients a numpy notebook holds against finite differences.

    import gradcheck
    report = gradcheck.check(parameters, grads, X, Y)          # the course's dicts
    report = gradcheck.check(model.params, grads, X, y=y,      # cs231n's TwoLayerNet
                             loss="softmax", reg=reg)           #   (reg·ΣW²)
    report = gradcheck.check([dense1, dense2], X=X, y=y,       # NNFS's layer objects
                             hidden="relu", loss="softmax")
    print(report)            # the command line's table
    report.passed, report.verdict, report.tensors, report.worst, report.to_dict()

The same model and options as the command line (``gradcheck check --help``), in Python
style; the work runs in the Rust library (on the GPU where there is one), with the GIL
released, a progress bar for checks longer than a second, and Ctrl-C honoured.
"""

import json
import os
import re
import sys
import time
from html import escape

# Mesa's device-select Vulkan layer prints "XDG_RUNTIME_DIR is invalid" on machines
# without a session; the command line silences it the same way.
os.environ.setdefault("NODEVICE_SELECT", "1")

import numpy as np  # noqa: E402

from ._native import GradcheckError  # noqa: E402
from ._native import check_arrays as _check_arrays  # noqa: E402
from ._native import check_npz as _check_npz  # noqa: E402
from ._native import check_layer as _check_layer  # noqa: E402
from ._native import layer_gradients as _layer_gradients  # noqa: E402
from ._native import layer_outputs as _layer_outputs  # noqa: E402
from ._native import judge_function as _judge_function  # noqa: E402

__all__ = ["check", "check_npz", "check_layer", "check_function", "from_layers", "Report", "Tensor",
           "Coordinate", "GradcheckError"]

# The model keywords, as the settings line names them.
_MODEL = ("hidden", "loss", "reduction", "l2", "weight_l2", "weight_l1", "bias_l2",
          "bias_l1", "keep_prob", "layout", "normalization")
# The check keywords, as the library's options name them.
_OPTIONS = ("eps", "threshold", "method", "device", "precision", "grad_precision",
            "sample", "sample_seed", "directions", "top", "max_memory", "adapter",
            "limits", "chunk")


def _as_array(name, value):
    """float32 stays float32 (judged as float32 gradients), float64 as it is, integers and
    bools become float64; any other dtype (float16, longdouble, complex, object) is
    refused, as the command line refuses it: converting it would judge numbers that
    were never computed."""
    a = np.asarray(value)
    if a.dtype == np.float32 or a.dtype == np.float64:
        return a
    if a.dtype.kind not in "iub":
        raise GradcheckError(
            f"array '{name}' has unsupported dtype {a.dtype}; "
            "use float64, float32, integer or bool arrays"
        )
    return np.asarray(a, dtype=np.float64)


# NNFS's and layer-object names: dense1_weights, dense1.biases, dense2_dweights.
_LAYER_NAME = re.compile(r"^(?P<layer>.*?\d+)[._](?P<d>d?)(?P<what>weights|biases)$")


def _layer_names(names):
    """Maps names like ``dense1_weights`` (``dense1.dbiases``: a gradient) to ``W1``, ``b1``
    (``dW1``, ``db1``), numbering the layers in the order of their numbers; other names
    are kept."""
    layers = []
    for n in names:
        m = _LAYER_NAME.match(n)
        if m and m["layer"] not in layers:
            layers.append(m["layer"])
    layers.sort(key=lambda s: int(re.search(r"(\d+)$", s).group(1)))
    out = {}
    for n in names:
        m = _LAYER_NAME.match(n)
        if m:
            k = layers.index(m["layer"]) + 1
            out[n] = f"{m['d']}{'W' if m['what'] == 'weights' else 'b'}{k}"
        else:
            out[n] = n
    return out


def from_layers(layers):
    """The parameters and gradients of layer objects (NNFS's ``Layer_Dense``: ``.weights``
    ``(n_in, n_out)``, ``.biases`` ``(1, n_out)``, ``.dweights``, ``.dbiases`` after
    ``backward``) as ``({"W1": …, "b1": …}, {"dW1": …, "db1": …})``; layers without
    weights (activations, dropout) are skipped. The gradients are ``None`` when the layers
    hold none (``backward`` not run)."""
    params, grads = {}, {}
    k = 0
    for layer in layers:
        if not (hasattr(layer, "weights") and hasattr(layer, "biases")):
            continue
        k += 1
        params[f"W{k}"] = layer.weights
        params[f"b{k}"] = layer.biases
        if hasattr(layer, "dweights") and hasattr(layer, "dbiases"):
            grads[f"dW{k}"] = layer.dweights
            grads[f"db{k}"] = layer.dbiases
    if k == 0:
        raise GradcheckError(
            "none of the layers has .weights and .biases (NNFS's Layer_Dense has them)")
    return params, (grads if len(grads) == 2 * k else None)


# NNFS's Layer_Dense regularisers, as the penalties name them.
_REGULARISERS = {"weight_l2": "weight_regularizer_l2", "weight_l1": "weight_regularizer_l1",
                 "bias_l2": "bias_regularizer_l2", "bias_l1": "bias_regularizer_l1"}


def _regularisers(layers):
    """The penalties NNFS's layer objects carry (``weight_regularizer_l2`` …), one
    coefficient per dense layer; those no layer sets are left out."""
    dense = [layer for layer in layers
             if hasattr(layer, "weights") and hasattr(layer, "biases")]
    found = {}
    for key, attribute in _REGULARISERS.items():
        values = [float(getattr(layer, attribute, 0) or 0) for layer in dense]
        if any(values):
            found[key] = values
    return found


def _parameters(parameters, grads):
    """The parameters as a dict of arrays, the gradients (from the layers when they are
    layer objects and no grads are given) and the penalties layer objects carry, from
    what notebooks hold: the course's ``parameters`` dict, cs231n's ``model.params`` (or
    the model itself), NNFS's layer objects."""
    if hasattr(parameters, "params") and isinstance(parameters.params, dict):
        parameters = parameters.params
    if isinstance(parameters, (list, tuple)):
        if parameters and all(isinstance(p, np.ndarray) for p in parameters):
            raise GradcheckError(
                f"parameters is a list of {len(parameters)} arrays: pass a dict "
                "{'W1': …, 'b1': …, …} (or layer objects with .weights and .biases)")
        if len(parameters) == 2 and all(hasattr(p, "items") for p in parameters):
            raise GradcheckError(
                "parameters is a pair of dicts: pass the parameters and the gradients "
                "as two arguments, check(parameters, grads, X, Y)")
        params, from_objects = from_layers(parameters)
        return params, grads if grads is not None else from_objects, \
            _regularisers(parameters)
    if not hasattr(parameters, "items"):
        raise GradcheckError(
            f"parameters is a {type(parameters).__name__}: pass a dict "
            "{'W1': …, 'b1': …, …}, a model with .params, or layer objects")
    return dict(parameters), grads, {}


def _settings(**model):
    """The model keywords as the settings line the library reads (None: unset)."""
    words = []
    for key, value in model.items():
        if value is None:
            continue
        if key == "hidden" and not isinstance(value, str):
            value = ",".join(value)
        if key in _REGULARISERS and isinstance(value, (list, tuple, np.ndarray)):
            value = ",".join(repr(float(v)) for v in value)
        if key == "layout" and value == "auto":
            continue
        words.append(f"{key}={value}")
    return " ".join(words)


def _sequence(layers):
    """A list of layer specs (``"relu"`` or ``("conv", {"stride": 1})``) as the settings
    word's text, ``conv(stride=1),relu``; a string is taken as it is."""
    if layers is None or isinstance(layers, str):
        return layers
    words = []
    for layer in layers:
        if isinstance(layer, str):
            words.append(layer)
            continue
        try:
            op, hparams = layer
            inner = ",".join(f"{k}={float(v)!r}" for k, v in dict(hparams).items())
        except (TypeError, ValueError):
            raise GradcheckError(
                f"a layer is a name or (name, {{hyperparameters}}), got {layer!r}") from None
        words.append(f"{op}({inner})" if inner else op)
    return ",".join(words)


def _known(options):
    """Refuses keywords that are neither the model's nor the check's, naming both."""
    unknown = set(options) - set(_OPTIONS)
    if unknown:
        raise GradcheckError(
            f"unknown keyword {', '.join(sorted(unknown))}; the model takes "
            f"{', '.join(_MODEL)}, reg, lambd, masks, y; the check {', '.join(_OPTIONS)}, "
            "partial, progress")


def _model(reg, lambd=None, **model):
    """The settings line of the model keywords, `reg` being cs231n's name of weight_l2 and
    `lambd` the course's of l2."""
    for alias, value, key in (("reg", reg, "weight_l2"), ("lambd", lambd, "l2")):
        if value is not None:
            if model.get(key) is not None:
                raise GradcheckError(f"{alias} and {key} name the same coefficient: give one")
            model[key] = value
    return _settings(**model)


def _options(values):
    """The check keywords as the library's options (None: its default)."""
    options = {key: values.get(key) for key in _OPTIONS}
    if options["max_memory"] is not None:
        options["max_memory"] = str(options["max_memory"])
    return options


class _Bar:
    """A progress line on stderr for checks longer than a second: in a terminal and in a
    notebook (whose output honours the carriage return)."""

    def __init__(self):
        self.start = time.monotonic()
        self.shown = False

    def __call__(self, done, total):
        if total <= 0:
            return
        if not self.shown and time.monotonic() - self.start < 1.0:
            return
        if done >= total and not self.shown:
            return
        self.shown = True
        width = 30
        filled = int(width * done / total)
        end = "\n" if done >= total else ""
        sys.stderr.write(
            f"\rgradcheck [{'#' * filled}{'.' * (width - filled)}] "
            f"{done:,}/{total:,}{end}")
        sys.stderr.flush()


def _progress(progress):
    if progress is None or progress is True:
        return _Bar()
    if progress is False:
        return None
    if callable(progress):
        return progress
    raise GradcheckError("progress: give True, False or a function of (done, total)")


def check(parameters, grads=None, X=None, Y=None, *, y=None, hidden=None, loss=None,
          reduction="mean", l2=None, weight_l2=None, weight_l1=None, bias_l2=None,
          bias_l1=None, reg=None, lambd=None, keep_prob=None, masks=None, layout="auto",
          normalization=None, layers=None, partial=False, progress=None, **options):
    """Checks ``grads`` (``dW1, db1, …`` as the course names them, or ``W1, b1, …`` as
    cs231n does) against finite differences of the network ``parameters`` (``W1, b1, …``,
    a model with ``.params``, or NNFS layer objects, whose ``.dweights`` are the
    gradients when ``grads`` is not given) on ``X`` and ``Y`` (or ``y``).

    The model: ``hidden`` (``"relu"``, ``"leaky_relu"``, ``"leaky_relu:0.2"``, ``"tanh"``,
    ``"sigmoid"``, ``"identity"``, or a list, one per hidden layer), ``loss`` (``"bce"``,
    the default, ``"softmax"``, ``"mse"`` ½‖ŷ − y‖², ``"mse_mean"`` mean((ŷ − y)²) as PyTorch and NNFS,
    ``"sse"`` ‖ŷ − y‖²), ``reduction`` (``"mean"``, ``"sum"``), the penalties — ``l2``
    (``lambd``: the course's λ, λ/(2m)·Σ‖W‖²), ``weight_l2`` (``reg``: a plain coefficient
    on Σ‖W‖², cs231n's ``reg·ΣW²``; its ``0.5·reg·ΣW²`` is ``weight_l2=reg/2``),
    ``weight_l1``, ``bias_l2``, ``bias_l1`` (NNFS's regularisers; read from NNFS layer
    objects when not given) — each a number for every layer or a list, one per layer —
    ``keep_prob`` with ``masks``
    (``[D1, D2, …]`` or ``{"D1": …}``: the masks your forward pass drew, 0/1 or already
    divided by keep_prob), ``layout`` (``"columns"``, ``"rows"``, ``"auto"``),
    ``normalization`` (``"batchnorm"``, ``"layernorm"``: cs231n's ``FullyConnectedNet``,
    affine → norm → ReLU [→ dropout] per hidden layer, its ``gamma1``, ``beta1``, …
    checked with the rest; examples in rows, softmax), ``layers`` (a network's layers in
    order up to the scores, the softmax loss after them: ``[("conv", {"stride": 1, "pad":
    1}), "relu", ("max_pool", {"pool_height": 2, "pool_width": 2, "stride": 2}),
    "affine", "relu", "affine"]`` is cs231n's ``ThreeLayerConvNet``; ``W1, b1`` per conv or
    affine layer in order, ``gamma<l>, beta<l>`` for a norm after layer ``l``).

    The check, as the command line's flags: ``eps``, ``threshold``, ``method``
    (``"delta"``, ``"full"``), ``device`` (``"auto"``, ``"gpu"``, ``"cpu"``),
    ``precision`` (``"auto"``, ``"f32"``, ``"f64"``), ``grad_precision`` (``"f32"`` for
    float32 gradients saved as float64), ``sample`` and ``sample_seed``, ``directions``,
    ``top``, ``max_memory`` (bytes or ``"8G"``), ``adapter``, ``limits``, ``chunk``;
    ``partial=True`` checks only the tensors whose gradients are given; ``progress``
    (``True``: a bar after a second, ``False``, or a function of ``(done, total)``).

    Returns a :class:`Report`; bad input raises :class:`GradcheckError`.
    """
    _known(options)
    if y is not None:
        if Y is not None:
            raise GradcheckError("give the labels once, as Y or as y")
        Y = y
    if X is None or Y is None:
        raise GradcheckError("X and the labels (Y or y) are needed")
    parameters, grads, carried = _parameters(parameters, grads)
    # The layers' own regularisers, unless a keyword names that penalty.
    given = dict(weight_l2=weight_l2 if reg is None else reg, weight_l1=weight_l1,
                 bias_l2=bias_l2, bias_l1=bias_l1)
    carried = {k: v for k, v in carried.items() if given[k] is None}
    weight_l2 = carried.get("weight_l2", weight_l2)
    weight_l1 = carried.get("weight_l1", weight_l1)
    bias_l2 = carried.get("bias_l2", bias_l2)
    bias_l1 = carried.get("bias_l1", bias_l1)
    if grads is None:
        raise GradcheckError("no gradients: give grads (or layers whose backward has run)")
    renamed = _layer_names(list(parameters))
    arrays = {"X": _as_array("X", X), "Y": _as_array("Y", Y)}
    for name, value in parameters.items():
        arrays[renamed[name]] = _as_array(name, value)
    if masks is not None and keep_prob is None:
        raise GradcheckError("dropout masks need the keep_prob they were drawn with")
    if masks is not None:
        items = masks.items() if isinstance(masks, dict) else (
            (f"D{i + 1}", m) for i, m in enumerate(masks))
        for name, value in items:
            arrays[name] = _as_array(name, value)
    if not hasattr(grads, "items"):
        raise GradcheckError(
            f"grads is a {type(grads).__name__}: pass a dict {{'dW1': …, 'db1': …}} "
            "(or {'W1': …} as cs231n)")
    grad_names = _layer_names(list(grads))
    gradients = {grad_names[n]: _as_array(n, v) for n, v in dict(grads).items()}
    settings = _model(reg, lambd, hidden=hidden, loss=loss, reduction=reduction, l2=l2,
                      weight_l2=weight_l2, weight_l1=weight_l1, bias_l2=bias_l2,
                      bias_l1=bias_l1, keep_prob=keep_prob, layout=layout,
                      normalization=normalization, sequence=_sequence(layers))
    data, text = _check_arrays(arrays, gradients, settings, _options(options),
                               partial, _progress(progress))
    return Report(json.loads(data), text)


def check_npz(path, *, grads=None, hidden=None, loss=None, reduction=None, l2=None,
              weight_l2=None, weight_l1=None, bias_l2=None, bias_l1=None, reg=None,
              lambd=None, keep_prob=None, layout=None, normalization=None, partial=False,
              progress=None, **options):
    """Checks the gradients an npz file holds, as ``gradcheck check FILE`` does, or those of
    a second file ``grads`` (cs231n's two-file form, keyed like the parameters); the model
    keywords override the file's own settings (its ``gradcheck`` array). The keywords are
    :func:`check`'s."""
    _known(options)
    settings = _model(reg, lambd, hidden=hidden, loss=loss, reduction=reduction, l2=l2,
                      weight_l2=weight_l2, weight_l1=weight_l1, bias_l2=bias_l2,
                      bias_l1=bias_l1, keep_prob=keep_prob, layout=layout,
                      normalization=normalization)
    data, text = _check_npz(str(path), None if grads is None else str(grads), settings,
                            _options(options), partial, _progress(progress))
    return Report(json.loads(data), text)


def check_layer(op, inputs, grads, dout=None, *, step=None, threshold=None, top=None,
                grad_precision=None, partial=False, bn_param=None, ln_param=None,
                dropout_param=None, **hparams):
    """Checks one layer's backward the way cs231n's notebooks do
    (``eval_numerical_gradient_array(f, x, dout)``: the gradient of ``sum(f(x) * dout)``),
    for every input, ``dx`` included.

    ``op``: ``"affine"``, ``"relu"``, ``"leaky_relu"`` (``alpha``), ``"sigmoid"``,
    ``"tanh"``, ``"softmax_loss"`` and ``"svm_loss"`` (``x`` (N, C), integer ``y``; no
    ``dout``: the output is the loss), ``"dropout"`` (``p`` the keep probability, the saved
    ``mask``), ``"batchnorm"``, ``"layernorm"`` (``eps``; train mode). ``inputs``: a dict
    under the course's argument names (``x``, ``w``, ``b``, ``gamma``, ``beta``, ``mask``,
    ``y``); ``grads``: a dict (``dx``, ``dw``, …) or the tuple the backward returns
    (``dx, dw, db``); ``dout``: the upstream gradient. The op's hyperparameters as keywords
    or as cs231n's ``bn_param``, ``ln_param``, ``dropout_param`` dicts (``eps`` is batch
    norm's epsilon); ``step`` is the finite difference's (default: 1e-5, 1e-4 and 1e-3, the
    tightest bound per coordinate kept). Returns a :class:`Report`.
    """
    for name, param in (("bn_param", bn_param), ("ln_param", ln_param),
                        ("dropout_param", dropout_param)):
        if param is None:
            continue
        if param.get("mode", "train") != "train":
            raise GradcheckError(f"{name}['mode'] is {param['mode']!r}: the check "
                                 "differentiates the train-mode forward")
        for key, value in param.items():
            if key not in ("mode", "seed", "running_mean", "running_var", "momentum"):
                hparams.setdefault(key, value)
    if not hasattr(inputs, "items"):
        raise GradcheckError(f"inputs is a {type(inputs).__name__}: pass a dict "
                             "{'x': …, 'w': …} under the op's argument names")
    differentiable = _layer_gradients(op)
    if "A_prev" in inputs and "x" not in inputs and op in ("conv", "max_pool", "avg_pool"):
        # deeplearning.ai's convention, channels last: its own argument names
        differentiable = ["A_prev", "W", "b"] if op == "conv" else ["A_prev"]
    if isinstance(grads, tuple) and len(grads) == len(differentiable) + 1 \
            and np.ndim(grads[0]) == 0:
        grads = grads[1:]                  # a loss's (loss, dx), as cs231n's return it
    if isinstance(grads, (tuple, list)):
        if len(grads) != len(differentiable):
            raise GradcheckError(
                f"{len(grads)} gradients for {op}, whose backward returns "
                f"{len(differentiable)}: " + ", ".join("d" + n for n in differentiable))
        grads = {"d" + n: g for n, g in zip(differentiable, grads)}
    elif isinstance(grads, np.ndarray) and len(differentiable) == 1:
        grads = {"d" + differentiable[0]: grads}
    elif not hasattr(grads, "items"):
        raise GradcheckError(f"grads is a {type(grads).__name__}: pass a dict "
                             "{'dx': …} or the tuple the backward returns")
    outputs = _layer_outputs(op)
    if outputs and dout is not None:
        # Several outputs (lstm_step's next_h, next_c): one upstream gradient each, as a
        # tuple in their order or a dict keyed dnext_h, …
        if isinstance(dout, (tuple, list)):
            if len(dout) != len(outputs):
                raise GradcheckError(f"{op} has outputs {', '.join(outputs)}: give "
                                     f"{len(outputs)} upstream gradients, not {len(dout)}")
            dout = {"d" + o: d for o, d in zip(outputs, dout)}
        if not hasattr(dout, "items"):
            raise GradcheckError(f"{op} has outputs {', '.join(outputs)}: give dout as "
                                 "(" + ", ".join("d" + o for o in outputs) + ")")
        grads = dict(grads, **dout)
        dout = None
    settings = " ".join([f"op={op}"] + [f"{k}={v!r}" for k, v in hparams.items()])
    data, text = _check_layer(
        settings, {k: _as_array(k, v) for k, v in inputs.items()},
        {k: _as_array(k, v) for k, v in grads.items()},
        None if dout is None else _as_array("dout", dout), step, threshold, top,
        grad_precision, partial)
    return Report(json.loads(data), text)


_U = np.finfo(np.float64).eps / 2


def check_function(f, inputs, grads, dout=None, *, step=1e-5, threshold=None, top=None,
                   grad_precision=None):
    """Checks the gradients of any function, for what no op describes: ``f(**inputs)``
    returns a scalar, or an array contracted with ``dout`` (the gradient of
    ``sum(f(**inputs) * dout)``, cs231n's ``eval_numerical_gradient_array``). ``grads``:
    ``{"dx": …}`` (or keyed like the inputs), one per input to check. f is evaluated in
    float64 at θ ± h and θ ± 2h per coordinate; the truncation is bounded by Richardson's
    ``|D(2h) − D(h)|/3`` (twice over), the round-off by f's own evaluation noise (its
    fourth difference), and a coordinate where the one-sided differences disagree by a
    constant jump is a kink, judged against its left and right derivatives. float32
    gradients or inputs are judged as float32. Returns a :class:`Report`.
    """
    if not hasattr(inputs, "items"):
        raise GradcheckError(f"inputs is a {type(inputs).__name__}: pass a dict of the "
                             "keyword arguments f takes")
    if not hasattr(grads, "items"):
        raise GradcheckError(f"grads is a {type(grads).__name__}: pass a dict "
                             "{'dx': …} keyed d + the input's name")
    float32 = [k for k, v in list(inputs.items()) + list(grads.items())
               if np.asarray(v).dtype == np.float32]
    base = {k: (np.array(v, dtype=np.float64) if np.asarray(v).dtype.kind == "f" else v)
            for k, v in inputs.items()}
    checked = {}
    for key, g in grads.items():
        name = key if key in base else key[1:] if key.startswith("d") and key[1:] in base \
            else None
        if name is None:
            raise GradcheckError(f"grads has {key!r}, which is no input of f: the inputs are "
                                 + ", ".join(inputs))
        if not (isinstance(base[name], np.ndarray) and base[name].dtype == np.float64):
            raise GradcheckError(f"{name} is not a float array: it has no gradient")
        checked[name] = _as_array(key, g)
    out = np.asarray(f(**base), dtype=np.float64)
    if dout is None and out.size != 1:
        raise GradcheckError(f"f returns an array of shape {out.shape}: give dout, the "
                             "upstream gradient it is contracted with")
    weights = np.ones_like(out) if dout is None else np.asarray(dout, dtype=np.float64)
    if weights.shape != out.shape:
        raise GradcheckError(f"dout has shape {weights.shape} but f returns {out.shape}: "
                             "dout is shaped like f's output")

    def value(arrays):
        terms = np.asarray(f(**arrays), dtype=np.float64) * weights
        return float(terms.sum()), float(np.abs(terms).sum())

    l0, size0 = value(base)
    probed = []
    for name, grad in checked.items():
        flat = base[name].reshape(-1)
        n = flat.size
        est, noise, trunc, kinks = (np.empty(n), np.empty(n), np.empty(n),
                                    np.full((n, 3), np.nan))
        for i in range(n):
            orig = flat[i]
            ls, steps = {}, {}
            for k in (-2, -1, 1, 2):
                flat[i] = orig + k * step
                steps[k] = flat[i] - orig
                ls[k], _ = value(base)
            flat[i] = orig
            d1 = (ls[1] - ls[-1]) / (steps[1] - steps[-1])
            d2 = (ls[2] - ls[-2]) / (steps[2] - steps[-2])
            fourth = ls[-2] - 4 * ls[-1] + 6 * l0 - 4 * ls[1] + ls[2]
            sigma = max(8 * _U * (abs(l0) + size0), abs(fourth) / np.sqrt(70))
            h = steps[1]
            jump1 = (ls[1] - 2 * l0 + ls[-1]) / h
            jump2 = (ls[2] - 2 * l0 + ls[-2]) / (2 * h)
            # each side's second difference: noise and curvature, never a kink at θ
            sides = max(abs(l0 - 2 * ls[-1] + ls[-2]), abs(ls[2] - 2 * ls[1] + l0))
            side_sigma = max(8 * _U * (abs(l0) + size0), sides / np.sqrt(6))
            jump_noise = 8 * side_sigma / h
            est[i] = d1
            noise[i] = 6 * sigma / (steps[1] - steps[-1])
            trunc[i] = 2 * abs(d2 - d1) / 3
            if abs(jump1) > 10 * jump_noise and abs(jump2 - jump1) <= 0.1 * abs(jump1):
                left, right = (l0 - ls[-1]) / -steps[-1], (ls[1] - l0) / h
                kinks[i] = (left, 0.5 * (left + right), right)
                noise[i] = 4 * side_sigma / h
            elif abs(jump2 - 2 * jump1) > 20 * (8 * sigma / h):
                # a kink inside the step, not at θ: the difference estimates no derivative
                trunc[i] = max(trunc[i], abs(jump1) * h + abs(jump2) * 2 * h)
        probed.append((name, np.array(inputs[name], dtype=np.float64),
                       np.asarray(grad, dtype=np.float64), est.tolist(),
                       noise.tolist(), trunc.tolist(), [tuple(r) for r in kinks],
                       (16 * np.abs(grad).reshape(-1)).tolist()))
    data, text = _judge_function("gradcheck function (python)", probed,
                                 list(out.shape) if dout is not None else [],
                                 dout is not None, l0, float32, step, threshold, top,
                                 grad_precision)
    return Report(json.loads(data), text)


class Tensor:
    """One tensor's share of the verdict, and why where it is undecided."""

    def __init__(self, data):
        self._data = data
        self.name = data["name"]
        self.verdict = data["verdict"]
        self.difference = data["difference"]
        self.ratio = data.get("ratio")
        self.diagnosis = data.get("diagnosis")
        self.reason = data.get("reason")
        self.shape = tuple(data["shape"])
        self.checked = data["checked_coordinates"]
        self.failing = data["failed_coordinates"]

    def __repr__(self):
        return f"Tensor({self.name}, {self.verdict}, difference={self.difference:.3e})"


class Coordinate:
    """One of the coordinates furthest beyond their tolerance."""

    def __init__(self, data):
        self._data = data
        self.name = data["name"]
        self.index = data["index"]
        self.grad = data["grad"]
        self.gradapprox = data["gradapprox"]
        self.rel_error = data["rel_error"]
        self.excess = data["excess"]
        self.verdict = data["verdict"]
        self.kink = data.get("kink")

    def __repr__(self):
        return (f"Coordinate({self.name}, grad={self.grad:.6e}, "
                f"approx={self.gradapprox:.6e}, {self.verdict})")


class Report:
    """A check's verdict: ``pass``, ``fail`` or ``inconclusive``, globally and per tensor,
    and why where it is undecided (``reason``, and each tensor's)."""

    def __init__(self, data, text):
        self._data = data
        self._text = text
        self.verdict = data["verdict"]
        self.passed = self.verdict == "pass"
        self.reason = data.get("reason")
        self.difference = data["difference"]
        self.tensors = [Tensor(t) for t in data["tensors"]]
        self.worst = [Coordinate(c) for c in data["worst"]]
        self.warnings = list(data.get("warnings", []))

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
            note = t.diagnosis or (f"undecided: {t.reason}" if t.reason else "")
            rows.append(
                f"<tr{style}><td>{escape(t.name)}</td><td>{escape(str(t.shape))}</td>"
                f"<td>{t.difference:.3e}</td><td>{ratio}</td><td>{escape(t.verdict)}</td>"
                f"<td>{escape(note)}</td></tr>")
        why = f"<p>why: {escape(self.reason)}</p>" if self.reason else ""
        warnings = "".join(f"<p>warning: {escape(w)}</p>" for w in self.warnings)
        return (
            f"<p><b>{escape(self.verdict.upper())}</b> difference {self.difference:.3e}</p>"
            + why
            + "<table><tr><th>tensor</th><th>shape</th><th>difference</th><th>ratio</th>"
            "<th>verdict</th><th>diagnosis</th></tr>" + "".join(rows) + "</table>"
            + warnings)
