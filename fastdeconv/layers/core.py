"""The other layers of a conv/deconv network, with Keras' arithmetic:
InputLayer, Dense, Flatten, Reshape, Dropout (and the other layers that
are the identity at inference), Activation, ReLU, LeakyReLU, ELU, Softmax,
Rescaling, Permute,
BatchNormalization (inference), Add, Subtract, Multiply, Average, Maximum,
Minimum, Concatenate."""

import numpy as np

from .. import _alloc
from ..errors import ShapeError, message
from ._base import (Layer, Node, Tensor, activation_name, apply_epilogue, c_contiguous, kernels, kernels_for,
                    on_device, softmax)


def _writable(x, inplace):
    """x itself when the layer may overwrite it (inplace and C-contiguous),
    else a C-contiguous copy (on the device for a device array)."""
    if inplace and c_contiguous(x):
        return x
    return kernels("cuda").copy(x) if on_device(x) else np.array(x, order="C")


class InputLayer(Layer):
    """A model input; `shape` excludes the batch dim, `batch_shape` includes it."""

    def __init__(self, shape=None, batch_size=None, batch_shape=None, name=None, dtype="float32", **kwargs):
        super().__init__(name=name)
        if batch_shape is None:
            if shape is None:
                raise ValueError("InputLayer: give shape (without the batch dim) or batch_shape")
            batch_shape = (batch_size, *tuple(shape))
        self.batch_shape = tuple(None if v is None else int(v) for v in batch_shape)
        self.dtype = dtype
        self.build(self.batch_shape)
        self.output = Tensor(self.batch_shape)
        self.output.node = Node(self, [], self.output)

    def call(self, x, backend="cpu", inplace=False):
        return x

    def get_config(self):
        return {"name": self.name, "batch_shape": self.batch_shape}


def Input(shape=None, batch_size=None, name=None, batch_shape=None, dtype="float32"):
    """A symbolic model input (as keras.Input)."""
    return InputLayer(shape=shape, batch_size=batch_size, batch_shape=batch_shape, name=name, dtype=dtype).output


class Dense(Layer):
    """y = act(x @ kernel + bias) over the last axis; kernel is (in, units)."""

    def __init__(self, units, activation=None, use_bias=True, name=None, **kwargs):
        super().__init__(name=name)
        if not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(message(f"Dense: units={units!r}", "a positive int", None))
        self.units, self.activation, self.use_bias = int(units), activation_name(activation), bool(use_bias)

    def weight_specs(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ShapeError(message(f"layer {self.name!r} (Dense) got input shape {input_shape}",
                                     "rank >= 2 with a known last dim", "Put a Flatten layer before it."))
        specs = [("kernel", (input_shape[-1], self.units), True)]
        if self.use_bias:
            specs.append(("bias", (self.units,), True))
        return specs

    def compute_output_shape(self, input_shape):
        self.weight_specs(input_shape)
        return tuple(input_shape[:-1]) + (self.units,)

    def _set(self, weights):
        self.kernel = weights[0]
        self.bias = weights[1] if self.use_bias else None

    def call(self, x, backend="cpu", inplace=False, epilogue=None):
        if on_device(x):
            # no matrix product on the device here: the host computes it
            return kernels("cuda").to_device(self._host_call(x.copy_to_host(), backend, epilogue))
        return self._host_call(x, backend, epilogue)

    def _host_call(self, x, backend, epilogue):
        y = np.matmul(x, self.kernel)
        if epilogue is None:
            return apply_epilogue(y, backend, False, self.bias, activation=self.activation)
        scale, shift, activation, alpha = epilogue
        return apply_epilogue(y, backend, False, self.bias, scale, shift, activation, alpha)

    def get_config(self):
        return {"name": self.name, "units": self.units, "activation": self.activation, "use_bias": self.use_bias}


class Flatten(Layer):
    """(batch, ...) -> (batch, prod(...)); with data_format='channels_first'
    the channels are moved last first (Keras' rule, which keeps a following
    Dense layer's weight order)."""

    aliases_input = True

    def __init__(self, data_format=None, name=None, **kwargs):
        super().__init__(name=name)
        self.data_format = data_format or "channels_last"

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else int(np.prod(rest, dtype=np.int64)))

    def call(self, x, backend="cpu", inplace=False):
        if self.data_format == "channels_first" and x.ndim > 2:
            if on_device(x):  # a transposing copy: on the host
                h = np.moveaxis(x.copy_to_host(), 1, -1)
                return kernels("cuda").to_device(h.reshape(h.shape[0], -1))
            x = np.moveaxis(x, 1, -1)
        n = x.shape[0]
        return x.reshape(n, x.size // n if n else int(np.prod(x.shape[1:], dtype=np.int64)))

    def get_config(self):
        return {"name": self.name, "data_format": self.data_format}


class Reshape(Layer):
    """(batch, ...) -> (batch, *target_shape); one entry may be -1."""

    aliases_input = True

    def __init__(self, target_shape, name=None, **kwargs):
        super().__init__(name=name)
        self.target_shape = tuple(int(v) for v in target_shape)
        if sum(v == -1 for v in self.target_shape) > 1 or any(v < -1 for v in self.target_shape):
            raise ValueError(message(f"Reshape: target_shape={target_shape!r}", "sizes >= 0 and at most one -1",
                                     None))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        if None in rest:
            return (input_shape[0], *(None if v == -1 else v for v in self.target_shape))
        total = int(np.prod(rest, dtype=np.int64))
        known = int(np.prod([v for v in self.target_shape if v != -1], dtype=np.int64))
        if -1 in self.target_shape:
            if known == 0 or total % known:
                raise ShapeError(message(f"layer {self.name!r} (Reshape): input {input_shape} to {self.target_shape}",
                                         "a size that divides the input's", None))
            return (input_shape[0], *(total // known if v == -1 else v for v in self.target_shape))
        if known != total:
            raise ShapeError(message(f"layer {self.name!r} (Reshape): input {input_shape} ({total} values per "
                                     f"example) to {self.target_shape} ({known})", "the same number of values", None))
        return (input_shape[0], *self.target_shape)

    def call(self, x, backend="cpu", inplace=False):
        shape = self.compute_output_shape((x.shape[0],) + tuple(x.shape[1:]))
        return x.reshape(tuple(shape))

    def get_config(self):
        return {"name": self.name, "target_shape": self.target_shape}


class Dropout(Layer):
    """Identity at inference."""

    aliases_input = True

    def __init__(self, rate=0.5, name=None, **kwargs):
        super().__init__(name=name)
        self.rate = float(rate)

    def call(self, x, backend="cpu", inplace=False):
        return x

    def get_config(self):
        return {"name": self.name, "rate": self.rate}


class SpatialDropout1D(Dropout):
    """Identity at inference."""


class SpatialDropout2D(Dropout):
    """Identity at inference."""


class SpatialDropout3D(Dropout):
    """Identity at inference."""


class GaussianDropout(Dropout):
    """Identity at inference."""


class AlphaDropout(Dropout):
    """Identity at inference."""


class GaussianNoise(Dropout):
    """Identity at inference."""

    def __init__(self, stddev=0.0, name=None, **kwargs):
        super().__init__(name=name)
        self.stddev = float(stddev)

    def get_config(self):
        return {"name": self.name, "stddev": self.stddev}


class ActivityRegularization(Dropout):
    """Identity at inference (its penalty only matters in training)."""

    def __init__(self, l1=0.0, l2=0.0, name=None, **kwargs):
        super().__init__(name=name)
        self.l1, self.l2 = float(l1), float(l2)

    def get_config(self):
        return {"name": self.name, "l1": self.l1, "l2": self.l2}


class Identity(Dropout):
    """The identity."""

    def get_config(self):
        return {"name": self.name}


class Activation(Layer):
    """An activation function as a layer (softmax over the last axis)."""

    def __init__(self, activation, name=None, **kwargs):
        super().__init__(name=name)
        self.activation = activation_name(activation)
        self.alpha = None
        self.aliases_input = self.activation == "linear"

    def call(self, x, backend="cpu", inplace=False):
        if self.activation == "linear":
            return x
        return apply_epilogue(_writable(x, inplace), backend, False, activation=self.activation, alpha=self.alpha)

    def get_config(self):
        return {"name": self.name, "activation": self.activation}


class ReLU(Activation):
    """Keras' ReLU layer: max(x, 0), capped at max_value (ReLU(6.0): relu6)
    or with negative_slope * x below zero (threshold 0)."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, name=None, **kwargs):
        given = f"ReLU(max_value={max_value}, negative_slope={negative_slope}, threshold={threshold})"
        for arg, v in (("max_value", max_value), ("negative_slope", negative_slope), ("threshold", threshold)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
                                  or not v >= 0):
                raise ValueError(message(given, f"{arg} a number >= 0", None))
        if threshold or (negative_slope and max_value is not None):
            raise ValueError(message(given, "threshold=0, and max_value or negative_slope (not both)",
                                     "A nonzero threshold, or a cap together with a negative slope, is not "
                                     "implemented."))
        if max_value is not None:
            super().__init__("relu6", name=name)
            self.alpha = float(max_value)
        elif negative_slope:
            super().__init__("leaky_relu", name=name)
            self.alpha = float(negative_slope)
        else:
            super().__init__("relu", name=name)
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope = float(negative_slope)

    def get_config(self):
        return {"name": self.name, "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": 0.0}


class PReLU(Layer):
    """x if x >= 0 else alpha * x, with a learned alpha per element of an
    example (Keras' PReLU); shared_axes (1-based, batch excluded) share one
    alpha along those axes, e.g. [1, 2] for one per channel of an image."""

    def __init__(self, shared_axes=None, name=None, **kwargs):
        super().__init__(name=name)
        axes = [] if shared_axes is None else [shared_axes] if isinstance(shared_axes, (int, np.integer)) \
            else list(shared_axes)
        if not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) and a >= 1 for a in axes):
            raise ValueError(message(f"PReLU: shared_axes={shared_axes!r}",
                                     "None, or axes >= 1 (the batch axis 0 is always shared)", None))
        self.shared_axes = sorted({int(a) for a in axes})
        self._alphas = {}

    def weight_specs(self, input_shape):
        rank = len(input_shape) - 1
        bad = [a for a in self.shared_axes if a > rank]
        if bad:
            raise ShapeError(message(f"layer {self.name!r} (PReLU): shared_axes {self.shared_axes} for input shape "
                                     f"{tuple(input_shape)}", f"axes 1..{rank}", None))
        shape = tuple(1 if i + 1 in self.shared_axes else n for i, n in enumerate(input_shape[1:]))
        if None in shape:
            raise ShapeError(message(f"layer {self.name!r} (PReLU) got input shape {tuple(input_shape)}",
                                     "known sizes on every axis that is not shared",
                                     "Give the Input a full shape, or share the unknown axes (shared_axes)."))
        return [("alpha", shape, True)]

    def _set(self, weights):
        self.alpha = weights[0]
        self._alphas = {}

    def _alpha_along(self, shape, dtype):
        """alpha as a read-only 1-D array that repeats along the flat example
        of `shape` (batch excluded): its axes from the first unshared one on,
        broadcast to the input's sizes (per channel, channels last: C)."""
        key = (tuple(shape), np.dtype(dtype).str)
        if key not in self._alphas:
            a = np.asarray(self.alpha)
            varying = [i for i, n in enumerate(a.shape) if n > 1]
            k0 = varying[0] if varying else len(shape)
            flat = np.ascontiguousarray(np.broadcast_to(a[(0,) * k0], shape[k0:]), dtype).reshape(-1)
            flat.flags.writeable = False
            self._alphas[key] = flat
        return self._alphas[key]

    def call(self, x, backend="cpu", inplace=False):
        y = _writable(x, inplace)
        alpha = self._alpha_along(tuple(y.shape)[1:], y.dtype)
        return kernels_for(y, backend).prelu(y, alpha)

    def get_config(self):
        return {"name": self.name, "shared_axes": self.shared_axes or None}


class LeakyReLU(Activation):
    """x if x >= 0 else negative_slope * x (Keras' default slope 0.3)."""

    def __init__(self, negative_slope=0.3, name=None, alpha=None, **kwargs):
        super().__init__("leaky_relu", name=name)
        self.alpha = float(negative_slope if alpha is None else alpha)

    def get_config(self):
        return {"name": self.name, "negative_slope": self.alpha}


class ELU(Activation):
    """x if x > 0 else alpha * (exp(x) - 1) (Keras' ELU layer)."""

    def __init__(self, alpha=1.0, name=None, **kwargs):
        super().__init__("elu", name=name)
        self.alpha = float(alpha)

    def get_config(self):
        return {"name": self.name, "alpha": self.alpha}


class Rescaling(Layer):
    """x * scale + offset with scalar scale and offset (Keras' Rescaling,
    usually an image model's first layer), in the input's float dtype."""

    def __init__(self, scale, offset=0.0, name=None, **kwargs):
        super().__init__(name=name)
        for arg, v in (("scale", scale), ("offset", offset)):
            if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, bool):
                raise ValueError(message(f"Rescaling: {arg}={v!r}", "a number (per-channel arrays are not supported)",
                                         None))
        self.scale, self.offset = float(scale), float(offset)
        self._vectors = {}

    def _scale_shift(self, channels, dtype):
        """Per-channel scale and offset vectors, made once per channel count
        and dtype and read-only (on cuda their device copies are kept)."""
        key = (channels, np.dtype(dtype).str)
        if key not in self._vectors:
            vectors = (np.full(channels, self.scale, dtype), np.full(channels, self.offset, dtype))
            for v in vectors:
                v.flags.writeable = False
            self._vectors[key] = vectors
        return self._vectors[key]

    def call(self, x, backend="cpu", inplace=False):
        y = _writable(x, inplace)
        c = int(tuple(y.shape)[-1]) if y.ndim > 1 else 1
        scale, shift = self._scale_shift(c, y.dtype)
        apply_epilogue(y if y.ndim > 1 else y.reshape(-1, 1), backend, False, scale=scale, shift=shift)
        return y

    def get_config(self):
        return {"name": self.name, "scale": self.scale, "offset": self.offset}


class Permute(Layer):
    """The non-batch axes reordered: output axis i is input axis dims[i - 1]
    (dims count from 1, as in Keras)."""

    def __init__(self, dims, name=None, **kwargs):
        super().__init__(name=name)
        try:
            self.dims = tuple(int(d) for d in dims)
        except (TypeError, ValueError):
            self.dims = ()
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)) or not self.dims:
            raise ValueError(message(f"Permute: dims={dims!r}", "a permutation of 1..n (the non-batch axes)", None))

    def compute_output_shape(self, input_shape):
        if len(input_shape) != len(self.dims) + 1:
            raise ShapeError(message(f"layer {self.name!r} (Permute, dims={self.dims}) got input shape {input_shape}",
                                     f"rank {len(self.dims) + 1}", None))
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def call(self, x, backend="cpu", inplace=False):
        axes = (0,) + self.dims
        if on_device(x):
            return kernels("cuda").permute(x, axes)
        y = _alloc.empty(tuple(x.shape[a] for a in axes), x.dtype)
        np.copyto(y, np.transpose(x, axes))
        return y

    def get_config(self):
        return {"name": self.name, "dims": self.dims}


class Softmax(Layer):
    """exp(x - max) / sum along `axis` (default: the last), as the softmax
    activation computes it along the last axis."""

    def __init__(self, axis=-1, name=None, **kwargs):
        super().__init__(name=name)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise ValueError(message(f"Softmax: axis={axis!r}", "one axis (an int)", None))
        self.axis = int(axis)

    def compute_output_shape(self, input_shape):
        if not -len(input_shape) < self.axis < len(input_shape) or self.axis % len(input_shape) == 0:
            raise ShapeError(message(f"layer {self.name!r} (Softmax): axis {self.axis} of input {input_shape}",
                                     "a non-batch axis", None))
        return tuple(input_shape)

    def call(self, x, backend="cpu", inplace=False):
        axis = self.axis % x.ndim
        y = _writable(x, inplace)
        if axis == x.ndim - 1:
            return apply_epilogue(y, backend, False, activation="softmax")
        if on_device(y):
            return kernels("cuda").softmax_axis(y, axis)
        y[...] = softmax(y, axis=axis)
        return y

    def get_config(self):
        return {"name": self.name, "axis": self.axis}


class BatchNormalization(Layer):
    """Inference: y = x * inv + (beta - mean * inv), inv = gamma / sqrt(var + eps)
    (tf.nn.batch_normalization's arithmetic), per entry of `axis`."""

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, name=None, **kwargs):
        super().__init__(name=name)
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise ValueError(message(f"BatchNormalization: axis={axis!r}", "one axis", None))
            axis = axis[0]
        self.axis, self.epsilon, self.center, self.scale = int(axis), float(epsilon), bool(center), bool(scale)

    def _channels(self, input_shape):
        axis = self.axis % len(input_shape)
        if axis == 0 or input_shape[axis] is None:
            raise ShapeError(message(f"layer {self.name!r} (BatchNormalization): axis {self.axis} of input "
                                     f"{input_shape}", "a non-batch axis of known size", None))
        return axis, input_shape[axis]

    def weight_specs(self, input_shape):
        _, c = self._channels(input_shape)
        specs = []
        if self.scale:
            specs.append(("gamma", (c,), True))
        if self.center:
            specs.append(("beta", (c,), True))
        return specs + [("moving_mean", (c,), False), ("moving_variance", (c,), False)]

    def default_weights(self, specs):
        return [np.ones(s, np.float32) if n in ("gamma", "moving_variance") else np.zeros(s, np.float32)
                for n, s, _ in specs]

    def compute_output_shape(self, input_shape):
        self._channels(input_shape)
        return tuple(input_shape)

    def _set(self, weights):
        it = iter(weights)
        gamma = next(it) if self.scale else None
        beta = next(it) if self.center else None
        mean, var = next(it), next(it)
        inv = (np.float32(1) / np.sqrt(var + np.float32(self.epsilon))).astype(np.float32)
        if gamma is not None:
            inv = inv * gamma
        self._mul = inv
        self._add = (beta - mean * inv) if beta is not None else -mean * inv
        for a in (self._mul, self._add):
            a.flags.writeable = False  # fixed: a device copy of them is kept (backend='cuda')

    def call(self, x, backend="cpu", inplace=False):
        y = _writable(x, inplace)
        axis = self.axis % y.ndim
        if axis == y.ndim - 1:
            return apply_epilogue(y, backend, False, scale=self._mul, shift=self._add)
        before = int(np.prod(y.shape[:axis], dtype=np.int64))
        inner = int(np.prod(y.shape[axis + 1:], dtype=np.int64))
        view = y.reshape(before, y.shape[axis], inner)
        apply_epilogue(view, backend, True, scale=self._mul, shift=self._add)
        return y

    def get_config(self):
        return {"name": self.name, "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale}


class _Merge(Layer):
    multi_input = True

    def _check_inputs(self, input_shape):
        if len(input_shape) < 2:
            raise ShapeError(message(f"layer {self.name!r} ({type(self).__name__}) got {len(input_shape)} input",
                                     "a list of at least 2 inputs", None))


class _Elementwise(_Merge):
    """inputs[0] op inputs[1] op ..., in that order, on inputs of one shape
    (`op`: cuda_layers.MERGE_OPS; Subtract takes exactly two)."""

    op = None

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        if self.op == "subtract" and len(input_shape) != 2:
            raise ShapeError(message(f"layer {self.name!r} (Subtract) got {len(input_shape)} inputs",
                                     "exactly 2 inputs", None))
        first = input_shape[0]
        for s in input_shape[1:]:
            if len(s) != len(first) or any(a is not None and b is not None and a != b for a, b in zip(first, s)):
                raise ShapeError(message(f"layer {self.name!r} ({type(self).__name__}): input shapes {input_shape}",
                                         "equal shapes", None))
        return tuple(next((v for v in col if v is not None), None) for col in zip(*input_shape))

    def call(self, xs, backend="cpu", inplace=False):
        if on_device(xs[0]):
            return kernels("cuda").merge(xs, self.op, inplace)
        ufunc = _UFUNCS[self.op]
        y = ufunc(xs[0], xs[1], out=xs[0] if inplace else None)
        for x in xs[2:]:
            ufunc(y, x, out=y)
        return y


# NumPy's maximum and minimum propagate NaN, as the CUDA kernel does.
_UFUNCS = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "average": np.add,
           "maximum": np.maximum, "minimum": np.minimum}


class Add(_Elementwise):
    """inputs[0] + inputs[1] + ..., summed in that order."""

    op = "add"


class Subtract(_Elementwise):
    """inputs[0] - inputs[1]."""

    op = "subtract"


class Multiply(_Elementwise):
    """inputs[0] * inputs[1] * ..., in that order."""

    op = "multiply"


class Maximum(_Elementwise):
    """The elementwise maximum (NaN if any input is NaN)."""

    op = "maximum"


class Minimum(_Elementwise):
    """The elementwise minimum (NaN if any input is NaN)."""

    op = "minimum"


class Average(_Elementwise):
    """(inputs[0] + inputs[1] + ...) / n, summed in that order (Keras'
    arithmetic: one division at the end)."""

    op = "average"

    def call(self, xs, backend="cpu", inplace=False):
        y = super().call(xs, backend, inplace)
        if on_device(y):
            return kernels("cuda").divide(y, len(xs))
        y /= y.dtype.type(len(xs))
        return y


class Concatenate(_Merge):
    """Joined along `axis` (default: the last)."""

    def __init__(self, axis=-1, name=None, **kwargs):
        super().__init__(name=name)
        self.axis = int(axis)

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        rank = len(input_shape[0])
        axis = self.axis % rank
        if axis == 0 or any(len(s) != rank for s in input_shape):
            raise ShapeError(message(f"layer {self.name!r} (Concatenate): input shapes {input_shape}, axis {self.axis}",
                                     "inputs of one rank, joined along a non-batch axis", None))
        out = []
        for i, col in enumerate(zip(*input_shape)):
            if i == axis:
                out.append(None if None in col else sum(col))
                continue
            known = {v for v in col if v is not None}
            if len(known) > 1:
                raise ShapeError(message(f"layer {self.name!r} (Concatenate): input shapes {input_shape}",
                                         f"equal sizes except along axis {self.axis}", None))
            out.append(known.pop() if known else None)
        return tuple(out)

    def call(self, xs, backend="cpu", inplace=False):
        if on_device(xs[0]):
            return kernels("cuda").concat(xs, self.axis)
        if (backend == "cpu" and all(isinstance(x, np.ndarray) for x in xs)
                and self.axis % xs[0].ndim == xs[0].ndim - 1):
            y = kernels(backend).concat_last(xs)
            if y is not None:
                return y
        return np.concatenate(xs, axis=self.axis)

    def get_config(self):
        return {"name": self.name, "axis": self.axis}
