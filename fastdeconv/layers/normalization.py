"""LayerNormalization and GroupNormalization: statistics of each example
(not learned ones, as in BatchNormalization), then a per-channel scale and
shift; Keras' arithmetic y = x * inv + (beta - mean * inv), inv = gamma /
sqrt(var + epsilon). The mean and the variance (of x - mean) are summed in
float64, so the result is closer to the exact one than a float32 pass: on
cpu by cpu_layers.normalize (Numba), on the reference backend and for
LayerNormalization over non-trailing axes by NumPy (`_normalize`)."""

import numpy as np

from ..errors import ShapeError, message
from ._base import Layer, kernels, on_device


def _normalize(x, axes, gamma, beta, epsilon, param_shape):
    """NumPy: x normalized over `axes` (statistics in float64), then
    gamma / beta broadcast from `param_shape`."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = np.square(x64 - mean).mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(var + epsilon)
    if gamma is not None:
        inv = inv * gamma.astype(np.float64).reshape(param_shape)
    res = -mean * inv
    if beta is not None:
        res = res + beta.astype(np.float64).reshape(param_shape)
    return (x64 * inv + res).astype(x.dtype)


class _Normalization(Layer):
    def __init__(self, epsilon, center, scale, name):
        super().__init__(name=name)
        self.epsilon, self.center, self.scale = float(epsilon), bool(center), bool(scale)

    def _param_specs(self, shape):
        specs = []
        if self.scale:
            specs.append(("gamma", shape, True))
        if self.center:
            specs.append(("beta", shape, True))
        return specs

    def _set(self, weights):
        it = iter(weights)
        self.gamma = next(it) if self.scale else None
        self.beta = next(it) if self.center else None

    def default_weights(self, specs):
        return [np.ones(s, np.float32) if n == "gamma" else np.zeros(s, np.float32) for n, s, _ in specs]

    def compute_output_shape(self, input_shape):
        self.weight_specs(input_shape)
        return tuple(input_shape)


class LayerNormalization(_Normalization):
    """Normalized over `axis` (an int or a list of axes; default the last)
    per example and per position along the other axes; gamma and beta have
    the shape of the normalized axes."""

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False, name=None, **kwargs):
        super().__init__(epsilon, center, scale, name)
        if rms_scaling:
            raise ValueError(message("LayerNormalization: rms_scaling=True", "rms_scaling=False",
                                     "Keras deprecates it (it scales by the variance, not the RMS)."))
        self.axis = tuple(int(a) for a in axis) if isinstance(axis, (list, tuple)) else (int(axis),)

    def _axes(self, rank):
        axes = sorted({a % rank for a in self.axis}) if all(-rank <= a < rank for a in self.axis) else None
        if axes is None or 0 in axes:
            raise ShapeError(message(f"layer {self.name!r} (LayerNormalization): axis {self.axis} for rank {rank}",
                                     "non-batch axes of the input", None))
        return tuple(axes)

    def weight_specs(self, input_shape):
        axes = self._axes(len(input_shape))
        if any(input_shape[a] is None for a in axes):
            raise ShapeError(message(f"layer {self.name!r} (LayerNormalization): input {input_shape}",
                                     "known sizes along the normalized axes", None))
        return self._param_specs(tuple(input_shape[a] for a in axes))

    def call(self, x, backend="cpu", inplace=False):
        rank = len(x.shape)
        axes = self._axes(rank)
        param_shape = tuple(x.shape[a] if a in axes else 1 for a in range(rank))
        trailing = axes == tuple(range(rank - len(axes), rank))
        shape = tuple(x.shape)
        if on_device(x):
            if trailing:  # rows of the flat array, gamma and beta flat along them
                flat = (lambda v: None if v is None else v.reshape(-1))  # noqa: E731
                return kernels("cuda").normalize_rows(x, int(np.prod([shape[a] for a in axes])), flat(self.gamma),
                                                      flat(self.beta), self.epsilon)
            # other axes: on the host (rare in conv networks)
            y = _normalize(x.copy_to_host(), axes, self.gamma, self.beta, self.epsilon, param_shape)
            return kernels("cuda").to_device(y)
        if backend == "cpu" and trailing:
            rows = np.ascontiguousarray(x).reshape(int(np.prod(shape[:rank - len(axes)])), -1)
            return kernels("cpu").normalize_rows(rows, self.gamma, self.beta, self.epsilon).reshape(shape)
        return _normalize(np.asarray(x), axes, self.gamma, self.beta, self.epsilon, param_shape)

    def get_config(self):
        return {"name": self.name, "axis": list(self.axis), "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale}


class GroupNormalization(_Normalization):
    """The channels (`axis`, the last by default) split into `groups`
    consecutive groups; each example and group normalized over its channels
    and every spatial position; gamma and beta per channel."""

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, name=None, **kwargs):
        super().__init__(epsilon, center, scale, name)
        if not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ValueError(message(f"GroupNormalization: groups={groups!r}", "a positive int", None))
        self.groups, self.axis = int(groups), int(axis)

    def _channel_axis(self, rank):
        axis = self.axis % rank if -rank <= self.axis < rank else 0
        if axis == 0:
            raise ShapeError(message(f"layer {self.name!r} (GroupNormalization): axis {self.axis} for rank {rank}",
                                     "a non-batch axis", None))
        return axis

    def weight_specs(self, input_shape):
        axis = self._channel_axis(len(input_shape))
        c = input_shape[axis]
        if c is None or c % self.groups:
            raise ShapeError(message(f"layer {self.name!r} (GroupNormalization): {c} channels, groups={self.groups}",
                                     "a channel count divisible by groups", None))
        return self._param_specs((c,))

    def call(self, x, backend="cpu", inplace=False):
        shape = tuple(x.shape)
        axis = self._channel_axis(len(shape))
        c = shape[axis]
        if axis in (1, len(shape) - 1) and (on_device(x) or backend == "cpu"):
            cf = axis == 1 and len(shape) > 2
            if on_device(x):
                return kernels("cuda").group_normalize(x, self.groups, cf, self.gamma, self.beta, self.epsilon)
            n, s = shape[0], int(np.prod(shape[2:] if cf else shape[1:-1]))
            x3 = np.ascontiguousarray(x).reshape((n, c, s) if cf else (n, s, c))
            return kernels("cpu").normalize(x3, self.groups, cf, self.gamma, self.beta,
                                            self.epsilon).reshape(shape)
        host = x.copy_to_host() if on_device(x) else np.asarray(x)
        grouped = host.reshape(shape[:axis] + (self.groups, c // self.groups) + shape[axis + 1:])
        axes = tuple(a for a in range(1, grouped.ndim) if a != axis)
        param_shape = tuple(self.groups if a == axis else c // self.groups if a == axis + 1 else 1
                            for a in range(grouped.ndim))
        y = _normalize(grouped, axes, self.gamma, self.beta, self.epsilon, param_shape).reshape(shape)
        return kernels("cuda").to_device(y) if on_device(x) else y

    def get_config(self):
        return {"name": self.name, "groups": self.groups, "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale}
