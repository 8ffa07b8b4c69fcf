"""Layer, the symbolic Tensor of the functional API, and activations.

Shapes are Keras shapes: tuples that include the batch dim as None
(`(None, 224, 224, 3)`); a spatial dim may be None too (any size).
Weights are NumPy arrays in Keras' layout and order (`get_weights`).
"""

import importlib
import re

import numpy as np

from ..errors import ShapeError, message

BACKENDS = ("cpu", "cuda", "reference")
_LAYER_KERNELS = {
    "cpu": "fastdeconv.backends.cpu_layers",
    "reference": "fastdeconv.backends.reference_layers",
    "cuda": "fastdeconv.backends.cuda_layers",
}


def kernels(backend):
    """The pooling / upsampling / epilogue kernels for a backend name."""
    if backend not in _LAYER_KERNELS:
        raise ValueError(message(f"backend={backend!r}", " or ".join(map(repr, BACKENDS)) + " or None", None))
    return importlib.import_module(_LAYER_KERNELS[backend])


def kernels_for(a, backend):
    """The kernels that work on array `a` in place: the CUDA ones for a
    device array (a Model on backend='cuda'), the host's for a host array
    on backend='cuda' (a layer called on NumPy arrays), else backend's."""
    return kernels("cuda" if on_device(a) else "cpu" if backend == "cuda" else backend)


def on_device(a):
    """A Numba CUDA device array: a Model's activation on backend='cuda'."""
    return bool(getattr(a, "__cuda_ndarray__", False))


def c_contiguous(a):
    return a.is_c_contiguous() if on_device(a) else a.flags.c_contiguous


# --- activations ---------------------------------------------------------------

# Keras' default slope of the `leaky_relu` activation function (the
# LeakyReLU layer's default is 0.3) and of `elu`.
_ALPHA = {"leaky_relu": 0.2, "elu": 1.0, "relu6": 6.0}
_ALIASES = {None: "linear", "swish": "silu", "hard_swish": "hard_silu"}
ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", "softplus", "silu", "swish",
               "relu6", "gelu", "selu", "hard_sigmoid", "hard_silu", "hard_swish", "mish", "softsign", "exponential")


def activation_name(activation):
    """A supported activation's canonical name, or a ValueError listing them."""
    name = _ALIASES.get(activation, activation)
    if name not in ACTIVATIONS:
        raise ValueError(message(f"activation={activation!r}", "one of " + ", ".join(ACTIVATIONS), None))
    return name


def softmax(x, axis=-1):
    """exp(x - max) / sum, along `axis` (Keras' softmax: the last axis)."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def apply_epilogue(y, backend, channels_first, bias=None, scale=None, shift=None, activation="linear",
                   alpha=None):
    """In place: y = act((y + bias) * scale + shift), per channel (None: 0,
    1, 0). Channels are axis 1 when channels_first (and y has more than 2
    dims), else the last axis. Softmax is over the last axis."""
    activation = activation_name(activation)
    cf = channels_first and y.ndim > 2
    channels = tuple(y.shape)[1 if cf else -1]  # tuple(): a device array's shape may refuse [-1]
    k = kernels_for(y, backend)
    if activation == "softmax":
        if hasattr(k, "softmax_last") and c_contiguous(y) and not cf:
            return k.softmax_last(y, bias, scale, shift)
        apply_epilogue(y, backend, channels_first, bias, scale, shift, "linear")
        if on_device(y):
            return k.softmax_last(y)  # a device activation is C-contiguous
        y[...] = softmax(y, axis=-1)
        return y
    if activation == "linear" and bias is None and scale is None and shift is None:
        return y
    if alpha is None:
        alpha = _ALPHA.get(activation, 0.0)
    if y.size:
        k.epilogue(y, channels, cf, bias, scale, shift, activation, float(alpha))
    return y


# --- naming ------------------------------------------------------------------------

_UIDS = {}


def snake_case(name):
    """Keras' class-name -> snake_case rule (Conv2DTranspose -> conv2d_transpose)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix):
    n = _UIDS.get(prefix, 0)
    _UIDS[prefix] = n + 1
    return prefix if n == 0 else f"{prefix}_{n}"


# --- symbolic tensors ------------------------------------------------------------------

class Tensor:
    """A symbolic value of the functional API: its shape and the node that
    makes it (None for a model input)."""

    def __init__(self, shape, node=None):
        self.shape = tuple(shape)
        self.node = node

    def __repr__(self):
        origin = self.node.layer.name if self.node else "input"
        return f"<Tensor shape={self.shape} from {origin}>"


class Node:
    """One call of a layer on symbolic inputs."""

    def __init__(self, layer, inputs, output):
        self.layer, self.inputs, self.output = layer, list(inputs), output


def _is_symbolic(inputs):
    items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    kinds = {isinstance(t, Tensor) for t in items}
    if kinds == {True}:
        return True
    if True in kinds:
        raise TypeError("a layer's inputs are either all symbolic Tensors or all arrays, not a mix")
    return False


# --- the layer ----------------------------------------------------------------------

class Layer:
    """Base class. A subclass defines `compute_output_shape`, `call` and,
    when it has weights, `weight_specs` ((name, shape, trainable) triples in
    Keras' order) and `_set(weights)`."""

    multi_input = False  # True: takes a list of inputs
    aliases_input = False  # True: the output may share memory with the input

    def __init__(self, name=None, **unused):
        self.name = name or unique_name(snake_case(type(self).__name__))
        self.input_shape = None
        self.output_shape = None
        self._pending = None
        self._weights = []
        self.built = False

    # shapes and weights
    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def weight_specs(self, input_shape):
        return []

    def default_weights(self, specs):
        """Zeros, except scale-like weights at 1 (BatchNormalization)."""
        return [np.zeros(shape, np.float32) for _, shape, _ in specs]

    def build(self, input_shape):
        if self.multi_input:
            input_shape = [tuple(s) for s in input_shape]
        else:
            input_shape = tuple(input_shape)
        if self.built:
            if not _shapes_compatible(input_shape, self.input_shape, self.multi_input):
                raise ShapeError(message(f"layer {self.name!r} built for input {self.input_shape}, called on "
                                         f"{input_shape}", "an input of the shape it was built for", None))
            return self.output_shape
        output_shape = self.compute_output_shape(input_shape)
        self.input_shape = input_shape
        self._specs = self.weight_specs(input_shape)
        pending, self._pending = self._pending, None
        self.built = True
        self.output_shape = output_shape
        self.set_weights(pending if pending is not None else self.default_weights(self._specs))
        return output_shape

    def set_weights(self, weights):
        """Weights in Keras' order and layout; checked against the shapes
        the layer needs once its input shape is known."""
        weights = list(weights)
        if not self.built:
            self._pending = weights
            return
        specs = self._specs
        if len(weights) != len(specs):
            names = ", ".join(f"{n} {list(s)}" for n, s, _ in specs) or "none"
            raise ShapeError(message(f"layer {self.name!r} ({type(self).__name__}) got {len(weights)} weights",
                                     f"{len(specs)}: {names}", None))
        arrays = []
        for w, (wname, shape, _) in zip(weights, specs):
            w = np.asarray(w)
            if tuple(w.shape) != tuple(shape):
                raise ShapeError(message(
                    f"layer {self.name!r} ({type(self).__name__}): weight {wname!r} has shape {list(w.shape)}",
                    f"{list(shape)} for input shape {self.input_shape}", None))
            if w.dtype.kind != "f":
                raise TypeError(message(f"layer {self.name!r}: weight {wname!r} has dtype {w.dtype}",
                                        "a float array", None))
            # a private, read-only copy: the cpu backend keeps the packed
            # form of read-only filters between calls (_alloc.memo)
            a = np.array(w, np.float32, order="C")
            a.flags.writeable = False
            arrays.append(a)
        self._weights = arrays
        self._set(arrays)

    def _set(self, weights):
        pass

    def get_weights(self):
        return [w.copy() for w in self._weights]

    def count_params(self, trainable=None):
        if not self.built:
            return 0
        return int(sum(int(np.prod(s)) for _, s, t in self._specs if trainable is None or t == trainable))

    # calling
    def call(self, inputs, backend="cpu", inplace=False):
        raise NotImplementedError

    def __call__(self, inputs, backend=None):
        """On symbolic Tensors: a Tensor (functional API). On arrays: the
        result, computed now (backend: 'cpu' unless given)."""
        if _is_symbolic(inputs):
            if self.multi_input != isinstance(inputs, (list, tuple)):
                kind = "a list of tensors" if self.multi_input else "one tensor"
                raise TypeError(f"layer {self.name!r} ({type(self).__name__}) takes {kind}")
            shapes = [t.shape for t in inputs] if self.multi_input else inputs.shape
            out = Tensor(self.build(shapes))
            out.node = Node(self, inputs if self.multi_input else [inputs], out)
            return out
        if self.multi_input:
            arrays = [np.asarray(a, np.float32) for a in inputs]
            self.build([(None,) + a.shape[1:] for a in arrays])
        else:
            arrays = np.asarray(inputs, np.float32)
            self.build((None,) + arrays.shape[1:])
        return self.call(arrays, backend or "cpu", inplace=False)

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} output_shape={self.output_shape}>"


def _shapes_compatible(a, b, multi):
    if multi:
        return len(a) == len(b) and all(_shapes_compatible(x, y, False) for x, y in zip(a, b))
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def check_rank(layer, input_shape, rank, what):
    if len(input_shape) != rank:
        raise ShapeError(message(f"layer {layer.name!r} ({type(layer).__name__}) got input shape {input_shape}",
                                 f"rank {rank} ({what})", None))


def tuple_arg(value, n, name, layer_cls):
    """Keras' int-or-tuple arguments (kernel_size, strides, ...) -> n ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * n
    try:
        items = tuple(int(v) for v in value)
    except Exception:
        items = ()
    if len(items) != n or any(isinstance(v, bool) for v in value):
        raise ValueError(message(f"{layer_cls}: {name}={value!r}", f"an int or {n} ints", None))
    return items


def padding_arg(value, layer_cls, allowed=("valid", "same")):
    if not isinstance(value, str) or value.lower() not in allowed:
        raise ValueError(message(f"{layer_cls}: padding={value!r}", " or ".join(map(repr, allowed)), None))
    return value.lower()


def data_format_arg(value, layer_cls):
    value = "channels_last" if value is None else value
    if value not in ("channels_last", "channels_first"):
        raise ValueError(message(f"{layer_cls}: data_format={value!r}", "'channels_last' or 'channels_first'",
                                 None))
    return value
