"""Keras' Conv1D/2D/3D and Conv1D/2D/3DTranspose on fastdeconv's ops.

The convolution itself is `fastdeconv.conv*d` / `conv*d_transpose` (so it
runs on any backend); bias and activation (and a following BatchNorm /
Activation layer's, see Model) follow in one in-place pass, or, on cpu,
inside the convolution kernel.
Transposed output sizes follow Keras (SEMANTICS section 4), including
`output_padding`, and are handed to the op as its `output_shape`.
"""

import numpy as np

from .. import _shapes, ops
from ..errors import ShapeError, message
from ._base import (_ALPHA, Layer, activation_name, apply_epilogue, check_rank, data_format_arg, kernels,
                    on_device, padding_arg, tuple_arg)

_FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}


# On the cpu backend the epilogue (bias, a following BatchNorm/Activation)
# runs inside the convolution; False: one pass over the result afterwards
# (tests compare the two).
FUSE_EPILOGUE = True


def keras_transpose_size(n, k, s, d, padding, output_padding):
    """Keras' transposed-conv output length (SEMANTICS section 4):
    output_padding None: same n*s, valid n*s + max(k_eff - s, 0);
    output_padding p:    same (n-1)*s + k_eff % 2 + p, valid (n-1)*s + k_eff + p."""
    if n is None:
        return None
    ke = _shapes.effective_kernel(k, d)
    if output_padding is None:
        return n * s if padding == "same" else n * s + max(ke - s, 0)
    return (n - 1) * s + (ke % 2 if padding == "same" else ke) + output_padding


class _Conv(Layer):
    rank = None
    transpose = False

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 activation=None, use_bias=True, groups=1, output_padding=None, name=None, **kwargs):
        super().__init__(name=name)
        cls = type(self).__name__
        n = self.rank
        if not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(message(f"{cls}: filters={filters!r}", "a positive int", None))
        self.filters = int(filters)
        self.kernel_size = tuple_arg(kernel_size, n, "kernel_size", cls)
        self.strides = tuple_arg(strides, n, "strides", cls)
        self.dilation_rate = tuple_arg(dilation_rate, n, "dilation_rate", cls)
        allowed = ("valid", "same", "causal") if n == 1 and not self.transpose else ("valid", "same")
        self.padding = padding_arg(padding, cls, allowed)
        self.data_format = data_format_arg(data_format, cls)
        self.activation = activation_name(activation)
        self.use_bias = bool(use_bias)
        self.groups = int(groups)
        if self.groups < 1 or self.filters % self.groups:
            raise ValueError(message(f"{cls}: groups={groups!r} with filters={filters}",
                                     "a positive divisor of filters", None))
        if output_padding is not None:
            output_padding = tuple_arg(output_padding, n, "output_padding", cls)
            if any(not 0 <= p < s for p, s in zip(output_padding, self.strides)):
                raise ValueError(message(f"{cls}: output_padding={output_padding} with strides={self.strides}",
                                         "0 <= output_padding < strides in every dim (Keras' rule)", None))
        self.output_padding = output_padding
        if any(k < 1 for k in self.kernel_size) or any(s < 1 for s in self.strides + self.dilation_rate):
            raise ValueError(message(f"{cls}: kernel_size={self.kernel_size}, strides={self.strides}, "
                                     f"dilation_rate={self.dilation_rate}", "values >= 1", None))

    @property
    def channels_first(self):
        return self.data_format == "channels_first"

    def _split(self, shape):
        shape = tuple(shape)  # a device array's shape may refuse [-1]
        if self.channels_first:
            return shape[2:], shape[1]
        return shape[1:-1], shape[-1]

    def _join(self, spatial, channels, batch=None):
        return (batch, channels, *spatial) if self.channels_first else (batch, *spatial, channels)

    def _pads(self, n, i):
        """'SAME', 'VALID' or an explicit (before, after) pair for dim i."""
        if self.padding == "causal":
            return ((self.kernel_size[i] - 1) * self.dilation_rate[i], 0)
        return self.padding.upper()

    def _in_channels(self, input_shape):
        check_rank(self, input_shape, self.rank + 2,
                   "[batch, channels, *spatial]" if self.channels_first else "[batch, *spatial, channels]")
        _, c = self._split(input_shape)
        if c is None:
            raise ShapeError(message(f"layer {self.name!r}: input shape {input_shape} has an unknown channel dim",
                                     "a known number of channels", None))
        return c

    def weight_specs(self, input_shape):
        c = self._in_channels(input_shape)
        if self.transpose:
            kernel = (*self.kernel_size, self.filters, c)
        else:
            if c % self.groups:
                raise ShapeError(message(f"layer {self.name!r}: {c} input channels with groups={self.groups}",
                                         "input channels divisible by groups", None))
            kernel = (*self.kernel_size, c // self.groups, self.filters)
        specs = [("kernel", kernel, True)]
        if self.use_bias:
            specs.append(("bias", (self.filters,), True))
        return specs

    def _out_size(self, n, i):
        k, s, d = self.kernel_size[i], self.strides[i], self.dilation_rate[i]
        if n is None:
            return None
        if self.transpose:
            p = None if self.output_padding is None else self.output_padding[i]
            return keras_transpose_size(n, k, s, d, self.padding, p)
        o = _shapes.forward_size(n, k, s, d, self._pads(n, i))
        if o is None:
            raise ShapeError(message(
                f"layer {self.name!r} ({type(self).__name__}): spatial dim {i} has size {n}, kernel {k} "
                f"with dilation {d} spans {_shapes.effective_kernel(k, d)}", "an input at least the kernel's span",
                "Use padding='same' or a smaller kernel."))
        return o

    def compute_output_shape(self, input_shape):
        self._in_channels(input_shape)
        spatial, _ = self._split(input_shape)
        out = tuple(self._out_size(n, i) for i, n in enumerate(spatial))
        if any(o is not None and o < 0 for o in out):
            raise ShapeError(message(f"layer {self.name!r}: output size {out}", "non-negative sizes", None))
        return self._join(out, self.filters, input_shape[0])

    def _set(self, weights):
        self.kernel = weights[0]
        self.bias = weights[1] if self.use_bias else None
        self._kernel64 = None

    def _kernel_for(self, dtype):
        """The filters for an input of `dtype`: float64 activations
        (predict(..., dtype=np.float64)) get a float64 copy, made once and
        read-only like the weights."""
        if np.dtype(dtype) != np.float64:
            return self.kernel
        if self._kernel64 is None:
            k = self.kernel.astype(np.float64)
            k.flags.writeable = False
            self._kernel64 = k
        return self._kernel64

    def call(self, x, backend="cpu", inplace=False, epilogue=None, out=None):
        """epilogue: (scale, shift, activation, alpha) of a following
        BatchNormalization / Activation, applied in the same pass (the
        layer's own activation is then linear). out: None, or an array of
        the output's shape to write it into (a Model's concatenation
        buffer); returns it."""
        scale, shift, activation, alpha = (None, None, self.activation, None) if epilogue is None else epilogue
        activation = activation_name(activation)
        # On cpu the epilogue runs inside the convolution (in registers for
        # linear/ReLU): no second pass over the output.
        fused = None
        if FUSE_EPILOGUE and backend == "cpu" and activation != "softmax":
            fused = (self.bias, scale, shift, activation, float(_ALPHA.get(activation, 0.0) if alpha is None else alpha))
        if out is not None and fused is None:
            out[...] = self.call(x, backend, inplace, epilogue)
            return out
        fmt = _FORMATS[self.rank][self.channels_first]
        spatial, _ = self._split(x.shape)
        # a device activation (a Model on backend='cuda'): the filters' device copy, made once
        device = on_device(x)
        kernel = self._kernel_for(x.dtype)
        kernel = kernels("cuda").device_copy(kernel) if device else kernel
        if self.transpose:
            sizes = tuple(self._out_size(n, i) for i, n in enumerate(spatial))
            shape = self._join(sizes, self.filters, x.shape[0])
            y = ops._transpose(f"conv{self.rank}d_transpose", self.rank, x, kernel, shape, self.strides,
                               self.padding.upper(), fmt, self.dilation_rate, backend, epilogue=fused, out=out)
        else:
            pads = [self._pads(n, i) for i, n in enumerate(spatial)]
            padding = pads if self.padding == "causal" else self.padding.upper()
            y = ops._forward(f"conv{self.rank}d", self.rank, x, kernel, self.strides, padding, fmt,
                             self.dilation_rate, backend, batch_dims=self.rank < 3, epilogue=fused, out=out)
        if out is not None:
            return out
        if fused is not None:
            return np.asarray(y)
        y = y if device else np.asarray(y)
        return apply_epilogue(y, backend, self.channels_first, self.bias, scale, shift, activation, alpha)

    def get_config(self):
        cfg = {"name": self.name, "filters": self.filters, "kernel_size": self.kernel_size,
               "strides": self.strides, "padding": self.padding, "data_format": self.data_format,
               "dilation_rate": self.dilation_rate, "activation": self.activation, "use_bias": self.use_bias}
        if self.transpose:
            cfg["output_padding"] = self.output_padding
        else:
            cfg["groups"] = self.groups
        return cfg


class Conv1D(_Conv):
    rank = 1


class Conv2D(_Conv):
    rank = 2


class Conv3D(_Conv):
    rank = 3


class Conv1DTranspose(_Conv):
    rank, transpose = 1, True


class Conv2DTranspose(_Conv):
    rank, transpose = 2, True


class Conv3DTranspose(_Conv):
    rank, transpose = 3, True


class _DepthwiseConv(_Conv):
    """Each input channel convolved with its own depth_multiplier filters
    (Keras' DepthwiseConv1D/2D, tf.nn.depthwise_conv2d): a grouped
    convolution with one group per input channel, output channel c *
    depth_multiplier + m. Weights: kernel (*kernel_size, channels,
    depth_multiplier) and bias (channels * depth_multiplier,)."""

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, name=None, **kwargs):
        if not isinstance(depth_multiplier, (int, np.integer)) or depth_multiplier < 1:
            raise ValueError(message(f"{type(self).__name__}: depth_multiplier={depth_multiplier!r}",
                                     "a positive int", None))
        self.depth_multiplier = int(depth_multiplier)
        super().__init__(self.depth_multiplier, kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, name=name)

    def _grouping(self, input_shape):
        c = self._in_channels(input_shape)
        self.filters, self.groups = c * self.depth_multiplier, c

    def compute_output_shape(self, input_shape):
        self._grouping(input_shape)
        return super().compute_output_shape(input_shape)

    def weight_specs(self, input_shape):
        self._grouping(input_shape)
        specs = [("kernel", (*self.kernel_size, self.groups, self.depth_multiplier), True)]
        if self.use_bias:
            specs.append(("bias", (self.filters,), True))
        return specs

    def _set(self, weights):
        # the grouped layout (*kernel_size, 1, channels * multiplier): the same
        # memory, so a read-only view of the read-only weights
        super()._set([weights[0].reshape(*self.kernel_size, 1, self.filters)] + list(weights[1:]))

    def get_config(self):
        cfg = super().get_config()
        del cfg["filters"], cfg["groups"]
        cfg["depth_multiplier"] = self.depth_multiplier
        return cfg


class DepthwiseConv1D(_DepthwiseConv):
    rank = 1


class DepthwiseConv2D(_DepthwiseConv):
    rank = 2


class _SeparableConv(_Conv):
    """A depthwise convolution (kernel_size, strides, dilation_rate, padding;
    no bias) followed by a 1 x 1 convolution to `filters` channels with the
    bias and activation (tf.nn.separable_conv2d). Weights: depthwise_kernel
    (*kernel_size, channels, depth_multiplier), pointwise_kernel (1, ...,
    channels * depth_multiplier, filters), bias (filters,)."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 depth_multiplier=1, activation=None, use_bias=True, name=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                         name=name)
        depthwise = DepthwiseConv1D if self.rank == 1 else DepthwiseConv2D
        self._depthwise = depthwise(kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate,
                                    use_bias=False, name=f"{self.name}/depthwise")
        pointwise = Conv1D if self.rank == 1 else Conv2D
        self._pointwise = pointwise(filters, 1, data_format=data_format, activation=activation, use_bias=use_bias,
                                    name=f"{self.name}/pointwise")
        self.depth_multiplier = self._depthwise.depth_multiplier

    def compute_output_shape(self, input_shape):
        self._in_channels(input_shape)
        return self._pointwise.compute_output_shape(self._depthwise.compute_output_shape(input_shape))

    def weight_specs(self, input_shape):
        middle = self._depthwise.compute_output_shape(input_shape)
        depthwise = self._depthwise.weight_specs(input_shape)[0]
        pointwise, *bias = self._pointwise.weight_specs(middle)
        return [("depthwise_kernel",) + depthwise[1:], ("pointwise_kernel",) + pointwise[1:]] + bias

    def _set(self, weights):
        middle = self._depthwise.build(self.input_shape)
        self._depthwise.set_weights(weights[:1])
        self._pointwise.build(middle)
        self._pointwise.set_weights(weights[1:])
        self.bias = self._pointwise.bias

    def call(self, x, backend="cpu", inplace=False, epilogue=None, out=None):
        """epilogue, out: as in Conv; they apply to the pointwise convolution."""
        y = self._depthwise.call(x, backend)
        return self._pointwise.call(y, backend, inplace=True, epilogue=epilogue, out=out)

    def get_config(self):
        cfg = super().get_config()
        del cfg["groups"]
        cfg["depth_multiplier"] = self.depth_multiplier
        return cfg


class SeparableConv1D(_SeparableConv):
    rank = 1


class SeparableConv2D(_SeparableConv):
    rank = 2
