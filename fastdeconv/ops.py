"""The six tf.nn-compatible ops.

Each op is a thin wrapper: `_args` validates everything and returns a Plan,
`_run` turns the arrays into canonical 5-D views and calls the backend.
"""

import math

import numpy as np

from . import _args, backends
from ._args import check_arrays, choose_backend, is_device_array

__all__ = ["conv1d", "conv2d", "conv3d", "conv1d_transpose", "conv2d_transpose", "conv3d_transpose"]


class _Host:
    """The array operations `_run` needs, for NumPy arrays (device arrays use
    the CUDA backend's `DeviceArrays`, which has the same three)."""

    zeros = staticmethod(np.zeros)

    @staticmethod
    def contiguous(a, dtype):
        return np.ascontiguousarray(a, dtype=dtype)

    @staticmethod
    def result(out, shape, dtype):
        return np.asarray(out).reshape(shape).astype(dtype, copy=False)


def _to_5d(a, batch, channels, spatial, channels_first, dtype, xp=_Host):
    """A C-contiguous, native-order 5-D array: batch dims flattened, missing
    leading spatial dims of size 1. A copy only when dtype, byte order or
    contiguity require one; the caller's array is never written."""
    a = xp.contiguous(a, dtype)
    spatial = (1,) * (3 - len(spatial)) + tuple(spatial)
    shape = (batch, channels) + spatial if channels_first else (batch,) + spatial + (channels,)
    return a.reshape(shape)


def _filters_5d(w, dtype, rank, xp=_Host):
    w = xp.contiguous(w, dtype)
    return w.reshape((1,) * (3 - rank) + w.shape)


def _out_5d(out, plan, dtype):
    """A channels-last 5-D view of the caller's `out` (never a copy), or
    None when it is not the result's shape and dtype or has no such view."""
    if plan.channels_first or out.dtype != dtype or tuple(out.shape) != tuple(plan.out_shape):
        return None
    v = out.view()
    try:
        # assigning a shape raises where reshape would silently copy
        v.shape = (math.prod(plan.batch_shape),) + (1,) * (3 - plan.rank) + tuple(plan.out_spatial) + (
            plan.out_channels,)
    except (AttributeError, ValueError):
        return None
    return v


def _run(plan, x, w, compute, backend, epilogue=None, out=None):
    """epilogue: None, or a conv layer's per-channel epilogue for the
    backend to apply to the result (only the cpu backend takes one; see
    backends.cpu.forward). out: None, or a NumPy array of the result's
    shape and dtype to hold it (a Model's concatenation buffer; the cpu
    backend writes a channel slice of it directly, any other case is
    computed and copied)."""
    host = type(x) is np.ndarray
    result_dtype = x.dtype if host and x.dtype.isnative else np.dtype(x.dtype).newbyteorder("=")
    # Device arrays stay on the device: zeros, 5-D views and casts happen there.
    xp = _Host if host or not is_device_array(x) else backends.get("cuda").DeviceArrays
    out5 = None
    if out is not None:
        if backend == "cpu" and not plan.empty and np.dtype(compute) == result_dtype:
            out5 = _out_5d(out, plan, result_dtype)
        if out5 is None:
            out[...] = _run(plan, x, w, compute, backend, epilogue)
            return out
    if plan.empty:
        return xp.zeros(plan.out_shape, result_dtype)
    batch, out_spatial, strides, dilations, pads_before = plan.geometry_3d
    x5 = _to_5d(x, batch, plan.in_channels, plan.in_spatial, plan.channels_first, compute, xp)
    w5 = _filters_5d(w, compute, plan.rank, xp)
    impl = backends.get(backend)
    extra = {} if epilogue is None else {"epilogue": epilogue}
    if out5 is not None:
        extra["out"] = out5
    if plan.transpose:
        y = impl.transpose(x5, w5, out_spatial, strides, dilations, pads_before, plan.channels_first, **extra)
    else:
        y = impl.forward(x5, w5, out_spatial, strides, dilations, pads_before, plan.groups,
                         plan.channels_first, **extra)
    if out5 is not None:
        return out
    return xp.result(y, plan.out_shape, result_dtype)


def _forward(op, rank, input, filters, strides, padding, data_format, dilations, backend, batch_dims=False,
             epilogue=None, out=None):
    backend = choose_backend(backend, input, filters)
    x, w, compute = check_arrays(op, input, filters)
    plan = _args.forward_plan(op, rank, x.shape, w.shape, strides, padding, data_format, dilations,
                              allow_batch_dims=batch_dims)
    return _run(plan, x, w, compute, backend, epilogue, out)


def _transpose(op, rank, input, filters, output_shape, strides, padding, data_format, dilations, backend,
               epilogue=None, out=None):
    backend = choose_backend(backend, input, filters)
    x, w, compute = check_arrays(op, input, filters)
    plan = _args.transpose_plan(op, rank, x.shape, w.shape, output_shape, strides, padding, data_format,
                                dilations)
    return _run(plan, x, w, compute, backend, epilogue, out)


def conv1d(input, filters, stride, padding, data_format="NWC", dilations=None, *, backend=None):
    """tf.nn.conv1d: input [batch..., W, C_in] (NWC) or [batch..., C_in, W] (NCW),
    filters [K, C_in, C_out]."""
    return _forward("conv1d", 1, input, filters, stride, padding, data_format, dilations, backend,
                    batch_dims=True)


def conv2d(input, filters, strides, padding, data_format="NHWC", dilations=None, *, backend=None):
    """tf.nn.conv2d: input [batch..., H, W, C_in] (NHWC) or [batch..., C_in, H, W]
    (NCHW), filters [KH, KW, C_in, C_out]."""
    return _forward("conv2d", 2, input, filters, strides, padding, data_format, dilations, backend,
                    batch_dims=True)


def conv3d(input, filters, strides, padding, data_format="NDHWC", dilations=None, *, backend=None):
    """tf.nn.conv3d: input [B, D, H, W, C_in] (NDHWC) or [B, C_in, D, H, W] (NCDHW),
    filters [KD, KH, KW, C_in, C_out]."""
    return _forward("conv3d", 3, input, filters, strides, padding, data_format, dilations, backend)


def conv1d_transpose(input, filters, output_shape, strides, padding="SAME", data_format="NWC", dilations=None,
                     *, backend=None):
    """tf.nn.conv1d_transpose: input [B, W, C_in], filters [K, C_out, C_in],
    output_shape [B, W_out, C_out] (data_format order) or None."""
    return _transpose("conv1d_transpose", 1, input, filters, output_shape, strides, padding, data_format,
                      dilations, backend)


def conv2d_transpose(input, filters, output_shape, strides, padding="SAME", data_format="NHWC", dilations=None,
                     *, backend=None):
    """tf.nn.conv2d_transpose: input [B, H, W, C_in], filters [KH, KW, C_out, C_in],
    output_shape [B, H_out, W_out, C_out], [H_out, W_out] or None."""
    return _transpose("conv2d_transpose", 2, input, filters, output_shape, strides, padding, data_format,
                      dilations, backend)


def conv3d_transpose(input, filters, output_shape, strides, padding="SAME", data_format="NDHWC", dilations=None,
                     *, backend=None):
    """tf.nn.conv3d_transpose: input [B, D, H, W, C_in], filters [KD, KH, KW, C_out, C_in],
    output_shape [B, D_out, H_out, W_out, C_out] or None."""
    return _transpose("conv3d_transpose", 3, input, filters, output_shape, strides, padding, data_format,
                      dilations, backend)
