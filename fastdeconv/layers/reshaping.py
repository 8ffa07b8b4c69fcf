"""ZeroPadding1D/2D/3D and Cropping1D/2D/3D: zeros added around the
spatial dims, or rows removed from their edges (Keras' arguments and
arithmetic: exact copies, no rounding)."""

import numpy as np

from .. import _alloc
from ..errors import ShapeError, message
from ._base import data_format_arg, kernels, on_device
from .pooling import _Spatial


def pairs_arg(value, rank, name, layer_cls):
    """Keras' padding / cropping argument -> `rank` (before, after) pairs of
    ints >= 0. rank 1: an int (both sides) or (before, after); rank 2 and 3:
    an int (every side), `rank` ints (both sides of each dim), or `rank`
    (before, after) pairs."""
    def ints(v, n):
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return (int(v),) * n
        items = tuple(v) if isinstance(v, (list, tuple)) else ()
        if len(items) != n or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in items):
            return None
        return tuple(int(i) for i in items)

    if rank == 1:
        pairs = ints(value, 2)
        pairs = None if pairs is None else (pairs,)
    else:
        pairs = None
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            pairs = ((int(value),) * 2,) * rank
        elif isinstance(value, (list, tuple)) and len(value) == rank:
            per_dim = [ints(v, 2) for v in value]
            if all(p is not None for p in per_dim):
                pairs = tuple(per_dim)
    if pairs is None or any(v < 0 for p in pairs for v in p):
        form = ("an int or (before, after)" if rank == 1 else
                f"an int, {rank} ints (both sides of each dim) or {rank} (before, after) pairs")
        raise ValueError(message(f"{layer_cls}: {name}={value!r}", f"{form}, all >= 0", None))
    return pairs


def pad_or_crop(x, out_shape, before):
    """A new array of out_shape holding x placed at offset `before` per axis
    (negative: cropped), zeros elsewhere; a device array for a device x."""
    if on_device(x):
        return kernels("cuda").pad_crop(x, out_shape, before)
    y = _alloc.empty(out_shape, x.dtype)
    dst, src = [], []
    for n_in, n_out, b in zip(x.shape, out_shape, before):
        lo, hi = max(b, 0), min(n_out, n_in + b)
        dst.append(slice(lo, max(lo, hi)))
        src.append(slice(lo - b, max(lo, hi) - b))
    if any(b > 0 for b in before) or any(n_out > n_in + b for n_in, n_out, b in zip(x.shape, out_shape, before)):
        y[...] = 0
    y[tuple(dst)] = x[tuple(src)]
    return y


class _Reshaping(_Spatial):
    """Spatial dims grown (sign +1: padding) or shrunk (-1: cropping) by
    (before, after) per dim."""

    sign = None
    argument = None

    def __init__(self, amounts, data_format=None, name=None, **kwargs):
        super().__init__(name=name)
        cls = type(self).__name__
        self.pairs = pairs_arg(amounts, self.rank, self.argument, cls)
        self.data_format = data_format_arg(data_format, cls)

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        spatial, c = self._split(input_shape)
        out = []
        for i, (n, (a, b)) in enumerate(zip(spatial, self.pairs)):
            if n is None:
                out.append(None)
                continue
            o = n + self.sign * (a + b)
            if o < 1:
                raise ShapeError(message(
                    f"layer {self.name!r} ({type(self).__name__}): spatial dim {i} of size {n} cropped by "
                    f"{a} + {b}", "a cropping that leaves at least one element", None))
            out.append(o)
        return self._join(out, c, input_shape[0])

    def call(self, x, backend="cpu", inplace=False):
        shape = tuple(x.shape)
        out = self.compute_output_shape((shape[0],) + shape[1:])
        spatial_before = [self.sign * a for a, _ in self.pairs]
        before = [0, 0] + spatial_before if self.channels_first else [0] + spatial_before + [0]
        return pad_or_crop(x, tuple(out), before)

    def get_config(self):
        cfg = {"name": self.name, self.argument: self.pairs[0] if self.rank == 1 else self.pairs}
        if not (self.rank == 1 and self.sign < 0):
            cfg["data_format"] = self.data_format
        return cfg


class _ZeroPadding(_Reshaping):
    sign, argument = 1, "padding"

    def __init__(self, padding=1, data_format=None, name=None, **kwargs):
        super().__init__(padding, data_format, name)


class _Cropping(_Reshaping):
    sign, argument = -1, "cropping"

    def __init__(self, cropping=1, data_format=None, name=None, **kwargs):
        super().__init__(cropping, data_format, name)


class ZeroPadding1D(_ZeroPadding):
    rank = 1


class ZeroPadding2D(_ZeroPadding):
    rank = 2


class ZeroPadding3D(_ZeroPadding):
    rank = 3


class Cropping1D(_Cropping):
    """Keras' Cropping1D has no data_format: always channels-last."""

    rank = 1

    def __init__(self, cropping=(1, 1), name=None, **kwargs):
        super().__init__(cropping, None, name)


class Cropping2D(_Cropping):
    rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, name=None, **kwargs):
        super().__init__(cropping, data_format, name)


class Cropping3D(_Cropping):
    rank = 3
