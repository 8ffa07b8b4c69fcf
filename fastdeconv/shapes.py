"""Public shape helpers: answer "what shape comes out?" without computing.

The rank comes from the filter shape (`len(filter_shape) - 2`); the data
format defaults to channels-last for that rank.
"""

import itertools

from . import _args
from .errors import ShapeError, message

_NAMES = {1: "conv1d", 2: "conv2d", 3: "conv3d"}
_DEFAULT_FORMAT = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


def _rank(filter_shape, fn):
    try:
        rank = len(filter_shape) - 2
    except TypeError:
        rank = None
    if rank not in _NAMES:
        raise ShapeError(message(f"{fn}: filter_shape={filter_shape!r}",
                                 "3, 4 or 5 entries ([*kernel, channels, channels] for 1-D, 2-D or 3-D)", None))
    return rank


def conv_output_shape(input_shape, filter_shape, strides, padding, data_format=None, dilations=None):
    """Output shape of conv1d/2d/3d, as a tuple in data_format order.

    >>> conv_output_shape([1, 7, 224, 224, 3], [1, 3, 3, 3, 64], 1, "SAME")
    (1, 7, 224, 224, 64)
    """
    rank = _rank(filter_shape, "conv_output_shape")
    fmt = data_format or _DEFAULT_FORMAT[rank]
    plan = _args.forward_plan(_NAMES[rank], rank, input_shape, filter_shape, strides, padding, fmt, dilations,
                              allow_batch_dims=rank < 3)
    return plan.out_shape


def conv_transpose_output_shapes(input_shape, filter_shape, strides, padding, data_format=None, dilations=None):
    """Every valid output_shape of conv1d/2d/3d_transpose, smallest first.

    Filters are in transpose layout [*kernel, out_channels, in_channels].

    >>> conv_transpose_output_shapes([1, 3, 3, 1], [2, 2, 3, 1], 2, "SAME")
    [(1, 5, 5, 3), (1, 5, 6, 3), (1, 6, 5, 3), (1, 6, 6, 3)]
    """
    rank = _rank(filter_shape, "conv_transpose_output_shapes")
    op = _NAMES[rank] + "_transpose"
    fmt = data_format or _DEFAULT_FORMAT[rank]
    geometry = _args.transpose_geometry(op, rank, input_shape, filter_shape, strides, padding, fmt, dilations)
    channels_first, batch_shape, fout, valid = geometry[0], geometry[4], geometry[7], geometry[9]
    return [_args.join_layout(batch_shape, combo, fout, channels_first) for combo in itertools.product(*valid)]
