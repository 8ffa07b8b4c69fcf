"""MaxPooling1D/2D/3D, AveragePooling1D/2D/3D, UpSampling1D/2D/3D
(nearest; UpSampling2D also bilinear) and the global max / average
poolings, as Keras computes them with its TensorFlow backend:

- output size: 'valid' (n - pool) // stride + 1, 'same' ceil(n / stride);
- 'same' pads are TF's (the odd one after) and never take part: max
  ignores them, average divides by the number of input elements in the
  window;
- upsampling repeats every element `size` times along each spatial dim;
  bilinear upsampling interpolates between the two nearest input rows and
  columns (TensorFlow's half-pixel rule, `bilinear_taps`).

The work is done by the backend's layer kernels on canonical 5-D views.
"""

import numpy as np

from .. import _shapes
from ..errors import ShapeError, message
from ._base import Layer, check_rank, data_format_arg, kernels, on_device, padding_arg, tuple_arg


def _to_5d(x, rank, channels_first, keep_strides=False):
    """A C-contiguous 5-D view (missing leading spatial dims of size 1).
    keep_strides: a channels-last array is viewed as it is, never copied
    (the cpu pooling reads a channel slice of a wider array in place)."""
    if keep_strides and not channels_first:
        return np.expand_dims(x, tuple(range(1, 4 - rank)))
    if not on_device(x):  # a device activation (backend='cuda') is C-contiguous
        x = np.ascontiguousarray(x)
    shape = tuple(x.shape)
    ones = (1,) * (3 - rank)
    if channels_first:
        return x.reshape(shape[:2] + ones + shape[2:])
    return x.reshape(shape[:1] + ones + shape[1:])


class _Spatial(Layer):
    rank = None

    @property
    def channels_first(self):
        return self.data_format == "channels_first"

    def _split(self, shape):
        shape = tuple(shape)  # a device array's shape may refuse [-1]
        return (shape[2:], shape[1]) if self.channels_first else (shape[1:-1], shape[-1])

    def _join(self, spatial, channels, batch):
        return (batch, channels, *spatial) if self.channels_first else (batch, *spatial, channels)

    def _check(self, input_shape):
        check_rank(self, input_shape, self.rank + 2,
                   "[batch, channels, *spatial]" if self.channels_first else "[batch, *spatial, channels]")


class _Pooling(_Spatial):
    is_max = None

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(name=name)
        cls = type(self).__name__
        self.pool_size = tuple_arg(pool_size, self.rank, "pool_size", cls)
        self.strides = self.pool_size if strides is None else tuple_arg(strides, self.rank, "strides", cls)
        self.padding = padding_arg(padding, cls)
        self.data_format = data_format_arg(data_format, cls)
        if any(v < 1 for v in self.pool_size + self.strides):
            raise ValueError(message(f"{cls}: pool_size={self.pool_size}, strides={self.strides}",
                                     "values >= 1", None))

    def _out_size(self, n, i):
        if n is None:
            return None
        k, s = self.pool_size[i], self.strides[i]
        o = _shapes.forward_size(n, k, s, 1, self.padding.upper())
        if o is None:
            raise ShapeError(message(
                f"layer {self.name!r} ({type(self).__name__}): spatial dim {i} has size {n}, pool size {k}",
                "an input at least as large as the pool with padding='valid'", "Use padding='same'."))
        return o

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        spatial, c = self._split(input_shape)
        return self._join([self._out_size(n, i) for i, n in enumerate(spatial)], c, input_shape[0])

    def call(self, x, backend="cpu", inplace=False):
        spatial, _ = self._split(x.shape)
        out = [self._out_size(n, i) for i, n in enumerate(spatial)]
        pads = [_shapes.forward_pads(n, k, s, 1, self.padding.upper())[0]
                for n, k, s in zip(spatial, self.pool_size, self.strides)]
        pad3 = lambda t, fill: (fill,) * (3 - self.rank) + tuple(t)  # noqa: E731
        x5 = _to_5d(x, self.rank, self.channels_first, keep_strides=backend == "cpu")
        y = kernels(backend).pool(x5, pad3(out, 1), pad3(self.pool_size, 1),
                                  pad3(self.strides, 1), pad3(pads, 0), self.channels_first, self.is_max)
        return y.reshape(self._join(out, self._split(x.shape)[1], x.shape[0]))

    def get_config(self):
        return {"name": self.name, "pool_size": self.pool_size, "strides": self.strides, "padding": self.padding,
                "data_format": self.data_format}


class MaxPooling1D(_Pooling):
    rank, is_max = 1, True


class MaxPooling2D(_Pooling):
    rank, is_max = 2, True


class MaxPooling3D(_Pooling):
    rank, is_max = 3, True


class AveragePooling1D(_Pooling):
    rank, is_max = 1, False


class AveragePooling2D(_Pooling):
    rank, is_max = 2, False


class AveragePooling3D(_Pooling):
    rank, is_max = 3, False


def bilinear_taps(n_in, n_out):
    """TensorFlow's resize_bilinear sampling along one dim (half-pixel
    centers, no align_corners; Keras' UpSampling2D 'bilinear'), in its
    float32 arithmetic: per output index the lower and upper input index and
    the weight of the upper one. in = (o + 0.5) * (n_in / n_out) - 0.5,
    lower = max(floor(in), 0), upper = min(ceil(in), n_in - 1), weight =
    in - floor(in)."""
    f32 = np.float32
    scale = f32(n_in) / f32(n_out)
    pos = (np.arange(n_out, dtype=f32) + f32(0.5)) * scale - f32(0.5)
    low = np.floor(pos)
    lower = np.maximum(low.astype(np.int64), 0)
    upper = np.minimum(np.ceil(pos).astype(np.int64), n_in - 1)
    return lower, upper, (pos - low).astype(f32)


class _UpSampling(_Spatial):
    interpolations = ("nearest",)

    def __init__(self, size=2, data_format=None, interpolation="nearest", name=None, **kwargs):
        super().__init__(name=name)
        cls = type(self).__name__
        self.size = tuple_arg(size, self.rank, "size", cls)
        if any(v < 1 for v in self.size):
            raise ValueError(message(f"{cls}: size={self.size}", "values >= 1", None))
        self.data_format = data_format_arg(data_format, cls)
        if interpolation not in self.interpolations:
            raise ValueError(message(f"{cls}: interpolation={interpolation!r}",
                                     " or ".join(map(repr, self.interpolations)), None))
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        spatial, c = self._split(input_shape)
        return self._join([None if n is None else n * s for n, s in zip(spatial, self.size)], c, input_shape[0])

    def call(self, x, backend="cpu", inplace=False):
        spatial, c = self._split(x.shape)
        out = [n * s for n, s in zip(spatial, self.size)]
        x5 = _to_5d(x, self.rank, self.channels_first)
        k = kernels("cuda" if on_device(x) else backend)
        if self.interpolation == "bilinear":
            # the sampling tables along H and W, as TensorFlow computes them
            taps = bilinear_taps(spatial[0], out[0]) + bilinear_taps(spatial[1], out[1])
            y = k.resize_bilinear(x5, taps, self.channels_first)
        else:
            y = k.upsample(x5, (1,) * (3 - self.rank) + self.size, self.channels_first)
        return y.reshape(self._join(out, c, x.shape[0]))

    def get_config(self):
        return {"name": self.name, "size": self.size, "data_format": self.data_format,
                "interpolation": self.interpolation}


class UpSampling1D(_UpSampling):
    rank = 1

    def __init__(self, size=2, name=None, **kwargs):
        # Keras' UpSampling1D has neither data_format nor interpolation.
        super().__init__(size=size, name=name)


class UpSampling2D(_UpSampling):
    """interpolation 'nearest' (repeats) or 'bilinear' (TensorFlow's
    resize_bilinear with half-pixel centers, as Keras calls it)."""

    rank = 2
    interpolations = ("nearest", "bilinear")


class UpSampling3D(_UpSampling):
    rank = 3

    def __init__(self, size=2, data_format=None, name=None, **kwargs):
        super().__init__(size=size, data_format=data_format, name=name)


class _GlobalPooling(_Spatial):
    """The max or the mean over all spatial positions, per channel: (batch,
    channels), or with keepdims the spatial dims kept at size 1. The mean is
    summed in float64 (NumPy's pairwise sum on the host, position order on
    the device) and rounded once."""

    is_max = None

    def __init__(self, data_format=None, keepdims=False, name=None, **kwargs):
        super().__init__(name=name)
        self.data_format = data_format_arg(data_format, type(self).__name__)
        self.keepdims = bool(keepdims)

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        _, c = self._split(input_shape)
        return self._join((1,) * self.rank, c, input_shape[0]) if self.keepdims else (input_shape[0], c)

    def call(self, x, backend="cpu", inplace=False):
        shape = tuple(x.shape)
        spatial, c = self._split(shape)
        if on_device(x):
            y = kernels("cuda").global_pool(x, int(np.prod(spatial, dtype=np.int64)), c, self.channels_first,
                                            self.is_max)
        else:
            axes = tuple(range(2, 2 + self.rank)) if self.channels_first else tuple(range(1, 1 + self.rank))
            if self.is_max:
                y = np.max(x, axis=axes) if x.size else np.zeros((shape[0], c), x.dtype)
            else:
                y = np.mean(x, axis=axes, dtype=np.float64).astype(x.dtype)
        return y.reshape(self.compute_output_shape(shape)) if self.keepdims else y

    def get_config(self):
        return {"name": self.name, "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalMaxPooling1D(_GlobalPooling):
    rank, is_max = 1, True


class GlobalMaxPooling2D(_GlobalPooling):
    rank, is_max = 2, True


class GlobalMaxPooling3D(_GlobalPooling):
    rank, is_max = 3, True


class GlobalAveragePooling1D(_GlobalPooling):
    rank, is_max = 1, False


class GlobalAveragePooling2D(_GlobalPooling):
    rank, is_max = 2, False


class GlobalAveragePooling3D(_GlobalPooling):
    rank, is_max = 3, False


def nearest_taps(n_in, n_out):
    """TensorFlow's resize_nearest_neighbor sampling along one dim
    (half-pixel centers): in = min(floor((o + 0.5) * (n_in / n_out)),
    n_in - 1), as (lower, upper, weight) taps of `bilinear_taps`' form with
    lower = upper and weight 0 (the bilinear kernels then copy exactly)."""
    f32 = np.float32
    scale = f32(n_in) / f32(n_out)
    idx = np.floor((np.arange(n_out, dtype=f32) + f32(0.5)) * scale).astype(np.int64)
    idx = np.clip(idx, 0, n_in - 1)
    return idx, idx, np.zeros(n_out, f32)


class Resizing(_Spatial):
    """Keras' Resizing: images (rank 4) resized to (height, width) with
    TensorFlow's 'bilinear' (the default) or 'nearest' rule, half-pixel
    centers, no antialiasing; any sizes, up or down."""

    rank = 2

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False, pad_to_aspect_ratio=False,
                 data_format=None, antialias=False, name=None, **kwargs):
        super().__init__(name=name)
        cls = type(self).__name__
        self.size = tuple_arg((height, width), 2, "(height, width)", cls)
        if min(self.size) < 1:
            raise ValueError(message(f"{cls}: height={height}, width={width}", "sizes >= 1", None))
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(message(f"{cls}: interpolation={interpolation!r}", "'bilinear' or 'nearest'", None))
        for arg, v in (("crop_to_aspect_ratio", crop_to_aspect_ratio), ("pad_to_aspect_ratio", pad_to_aspect_ratio),
                       ("antialias", antialias)):
            if v:
                raise ValueError(message(f"{cls}: {arg}=True", f"{arg}=False (the only mode supported)", None))
        self.interpolation = interpolation
        self.data_format = data_format_arg(data_format, cls)

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        _, c = self._split(input_shape)
        return self._join(self.size, c, input_shape[0])

    def call(self, x, backend="cpu", inplace=False):
        spatial, c = self._split(x.shape)
        taps_of = bilinear_taps if self.interpolation == "bilinear" else nearest_taps
        taps = taps_of(spatial[0], self.size[0]) + taps_of(spatial[1], self.size[1])
        k = kernels("cuda" if on_device(x) else backend)
        y = k.resize_bilinear(_to_5d(x, 2, self.channels_first), taps, self.channels_first)
        return y.reshape(self._join(self.size, c, x.shape[0]))

    def get_config(self):
        return {"name": self.name, "height": self.size[0], "width": self.size[1],
                "interpolation": self.interpolation, "data_format": self.data_format}
