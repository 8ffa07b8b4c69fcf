"""The one place where user arguments become a frozen `Plan`.

Everything a caller can get wrong is checked here, before any work, and
reported with what was given, what was expected and how to fix it. Kernels
only ever see a `Plan` and C-contiguous, native-byte-order 5-D arrays.
"""

import functools
import itertools
import math
import numbers
from dataclasses import dataclass

import numpy as np

from . import _shapes, backends
from .errors import ShapeError, message

BACKENDS = ("cpu", "cuda", "reference")


def _typed_key(v):
    """A hashable key for an argument that tells apart values Python calls
    equal but the checks do not (2, 2.0, True, np.int64(2); [2] and (2,)),
    so a remembered plan is only reused for arguments that would give it.
    Raises TypeError for unhashable values (arrays)."""
    if isinstance(v, (list, tuple)):
        # (plain numbers and strings inline: a call's key has ~20 of them)
        return (type(v),) + tuple([(type(e), e) if type(e) in _PLAIN else _typed_key(e) for e in v])
    hash(v)
    return (type(v), v)


_PLAIN = frozenset((int, float, bool, str, type(None)))
_NO_CLASH = frozenset((int, str, type(None)))  # no value of one equals a value of another
_INT = frozenset((int,))


def _plain_key(args, kwargs):
    """A key of the arguments themselves (tagged apart from _typed_key's
    keys) where they are ints, strings, None, and tuples or lists of ints
    (tagged by their type), which no other accepted value equals; else None
    (~1-2 us against _typed_key's ~6 for a call's ~20 values)."""
    key = ["plain"]
    for a in args:
        t = type(a)
        if t is tuple or t is list:
            if not _INT.issuperset(map(type, a)):
                return None
            key.append((t, *a))
        elif t in _NO_CLASH:
            key.append(a)
        else:
            return None
    for k, v in kwargs.items():
        if type(v) not in _NO_CLASH and type(v) is not bool:
            return None
        key.append((k, type(v), v))
    return tuple(key)


def _remembered(fn, size=512):
    """fn, remembering the plans of recent argument combinations: validating
    and planning a call costs ~40 us, a noticeable share of a small op.
    Errors are not remembered (they are raised again on every call)."""
    cache = {}

    @functools.wraps(fn)
    def planned(*args, **kwargs):
        try:
            key = _plain_key(args, kwargs) or (_typed_key(args), _typed_key(tuple(sorted(kwargs.items()))))
        except TypeError:
            return fn(*args, **kwargs)
        plan = cache.get(key)
        if plan is None:
            plan = fn(*args, **kwargs)
            if len(cache) >= size:
                cache.clear()
            cache[key] = plan
        return plan

    return planned


# Accepted data formats per op (first is the default); conv1d also takes
# TF's legacy 2-D spellings.
_FORMATS = {
    "conv1d": ("NWC", "NCW", "NHWC", "NCHW"),
    "conv1d_transpose": ("NWC", "NCW"),
    "conv2d": ("NHWC", "NCHW"),
    "conv2d_transpose": ("NHWC", "NCHW"),
    "conv3d": ("NDHWC", "NCDHW"),
    "conv3d_transpose": ("NDHWC", "NCDHW"),
}


@dataclass(frozen=True)
class Plan:
    """Everything a backend needs, already validated (spatial tuples have
    one entry per spatial dim, in D, H, W order)."""

    op: str
    transpose: bool
    channels_first: bool
    batch_shape: tuple  # leading batch dims of the input (usually one)
    in_spatial: tuple
    out_spatial: tuple
    kernel: tuple
    strides: tuple
    dilations: tuple
    pads: tuple  # (before, after) per dim; for a transpose, the crop
    groups: int
    in_channels: int
    out_channels: int
    out_shape: tuple  # the result's shape, in data_format order

    @property
    def rank(self):
        return len(self.in_spatial)

    @functools.cached_property
    def geometry_3d(self):
        """(batch, out_spatial, strides, dilations, pads_before) as the
        backends take them: batch dims flattened, each spatial tuple in 3-D
        (missing leading dims of 1 output, stride and dilation, 0 padding).
        Worked out once per plan (plans are remembered)."""
        pad3 = lambda t, fill: (fill,) * (3 - self.rank) + tuple(t)  # noqa: E731
        return (math.prod(self.batch_shape), pad3(self.out_spatial, 1), pad3(self.strides, 1),
                pad3(self.dilations, 1), pad3((p[0] for p in self.pads), 0))

    @property
    def empty(self):
        """True when the result is empty or is an empty sum (all zeros)."""
        return 0 in self.out_shape or 0 in self.in_spatial or self.in_channels == 0 or 0 in self.batch_shape

    @property
    def macs(self):
        """Multiply-adds of the dense computation (FLOPs = 2 * macs)."""
        batch = int(np.prod(self.batch_shape))
        if self.transpose:
            points = batch * int(np.prod(self.in_spatial)) * self.in_channels
            return points * int(np.prod(self.kernel)) * self.out_channels
        points = batch * int(np.prod(self.out_spatial)) * self.out_channels
        return points * int(np.prod(self.kernel)) * (self.in_channels // self.groups)


# --- small parsers -----------------------------------------------------------

def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _as_int_list(value, name, op):
    """An int or a sequence of ints as a list; anything else is a ValueError."""
    if _is_int(value):
        return [int(value)]
    try:
        items = list(np.asarray(value).reshape(-1).tolist()) if not isinstance(value, (list, tuple)) else list(value)
    except Exception:
        items = None
    if items is None or not all(_is_int(v) for v in items):
        raise ValueError(message(f"{op}: {name}={value!r}", "an int or a list of ints", None))
    return [int(v) for v in items]


def data_format_info(op, data_format):
    """(channels_first, canonical name) for a data_format string."""
    choices = _FORMATS[op]
    if not isinstance(data_format, str) or data_format.upper() not in choices:
        raise ValueError(message(
            f"{op}: data_format={data_format!r}",
            " or ".join(repr(c) for c in choices),
            "Channels-last is the default; use the 'NC...' spelling for channels-first."))
    fmt = data_format.upper()
    return fmt.startswith("NC"), fmt


def spatial_values(value, name, op, rank, channels_first, default=1):
    """Strides or dilations in any TF form -> a tuple of `rank` ints >= 1.

    Forms: None (dilations only), an int, a list of length 1, `rank`, or
    `rank + 2` in data_format order with 1 at batch and channel.
    """
    if value is None:
        if default is None:
            raise ValueError(message(f"{op}: {name}=None", "an int or a list of ints", None))
        return (default,) * rank
    items = _as_int_list(value, name, op)
    full = rank + 2
    if len(items) == 1:
        vals = items * rank
    elif len(items) == rank:
        vals = items
    elif len(items) == full:
        outer = (items[0], items[1]) if channels_first else (items[0], items[-1])
        if outer != (1, 1):
            raise ValueError(message(
                f"{op}: {name}={items}",
                f"1 at the batch and channel positions of a length-{full} {name} list",
                f"Give only the {rank} spatial values, e.g. {name}={items[2:] if channels_first else items[1:-1]}."))
        vals = items[2:] if channels_first else items[1:-1]
    else:
        lengths = sorted({1, rank, full})
        raise ValueError(message(
            f"{op}: {name}={items} has length {len(items)}",
            f"an int or a list of length {', '.join(map(str, lengths))}",
            "Pass one value per spatial dim, or one value for all."))
    if any(v < 1 for v in vals):
        raise ValueError(message(f"{op}: {name}={value!r}", f"every {name[:-1] if name.endswith('s') else name} >= 1", None))
    return tuple(vals)


def parse_padding(padding, op, rank, channels_first):
    """'SAME' / 'VALID' (any case), or explicit pads -> 'SAME', 'VALID' or a
    tuple of `rank` (before, after) pairs.

    Explicit pads come as TF spells them (rank+2 pairs in data_format order,
    zeros at batch and channel) or as `rank` spatial pairs.
    """
    choices = "'SAME', 'VALID', or explicit pads"
    if isinstance(padding, str):
        up = padding.upper()
        if up in ("SAME", "VALID"):
            return up
        fix = "For explicit padding pass a list of (before, after) pairs." if up == "EXPLICIT" else None
        raise ValueError(message(f"{op}: padding={padding!r}", choices, fix))
    try:
        pairs = [tuple(p) for p in padding]
    except TypeError:
        pairs = None
    if pairs is None or not all(len(p) == 2 and all(_is_int(v) for v in p) for p in pairs):
        raise ValueError(message(
            f"{op}: padding={padding!r}", choices + " as (before, after) int pairs",
            f"e.g. padding={[(1, 1)] * rank}"))
    pairs = [(int(a), int(b)) for a, b in pairs]
    if len(pairs) == rank + 2:
        outer = pairs[:2] if channels_first else [pairs[0], pairs[-1]]
        if any(p != (0, 0) for p in outer):
            raise ValueError(message(
                f"{op}: padding={padding!r}", "(0, 0) at the batch and channel positions",
                "Only spatial dims can be padded."))
        pairs = pairs[2:] if channels_first else pairs[1:-1]
    elif len(pairs) != rank:
        raise ValueError(message(
            f"{op}: padding has {len(pairs)} pairs", f"{rank} spatial pairs or {rank + 2} pairs in data_format order",
            None))
    if any(v < 0 for p in pairs for v in p):
        raise ValueError(message(f"{op}: padding={padding!r}", "non-negative pads", None))
    return tuple(pairs)


def _split_layout(shape, rank, channels_first, op, what, allow_batch_dims):
    """(batch_shape, spatial, channels) of an activation shape."""
    shape = tuple(int(v) for v in shape)
    ok = len(shape) >= rank + 2 if allow_batch_dims else len(shape) == rank + 2
    if not ok:
        expected = f"{rank + 2} dims" + (" (or more leading batch dims)" if allow_batch_dims else "")
        layout = "[batch, channels, *spatial]" if channels_first else "[batch, *spatial, channels]"
        raise ShapeError(message(f"{op}: {what} has shape {list(shape)}", f"{expected}, {layout}", None))
    if channels_first:
        return shape[:-rank - 1], shape[-rank:], shape[-rank - 1]
    return shape[:-rank - 1], shape[-rank - 1:-1], shape[-1]


def _filter_dims(shape, rank, op, transpose):
    shape = tuple(int(v) for v in shape)
    layout = "[*kernel, out_channels, in_channels]" if transpose else "[*kernel, in_channels, out_channels]"
    if len(shape) != rank + 2:
        raise ShapeError(message(f"{op}: filters have shape {list(shape)}", f"{rank + 2} dims {layout}", None))
    kernel = shape[:rank]
    if any(k < 1 for k in kernel):
        raise ShapeError(message(f"{op}: filters have shape {list(shape)}", "every kernel size >= 1", None))
    return kernel, shape[rank], shape[rank + 1]


# --- shape plans -------------------------------------------------------------

def _describe_pad(pad):
    return pad if isinstance(pad, str) else f"explicit pads {pad}"


@_remembered
def forward_plan(op, rank, input_shape, filter_shape, strides, padding, data_format, dilations,
                 allow_batch_dims=False):
    channels_first, _ = data_format_info(op, data_format)
    strides = spatial_values(strides, "strides", op, rank, channels_first, default=None)
    dilations = spatial_values(dilations, "dilations", op, rank, channels_first)
    pad = parse_padding(padding, op, rank, channels_first)
    batch_shape, spatial, channels = _split_layout(input_shape, rank, channels_first, op, "input", allow_batch_dims)
    kernel, fin, fout = _filter_dims(filter_shape, rank, op, transpose=False)

    if fin == 0:
        groups = 1
        if channels != 0:
            raise ShapeError(message(f"{op}: input has {channels} channels but filters have 0 in_channels",
                                     "filters.shape[-2] equal to the input's channels", None))
    elif channels % fin:
        raise ShapeError(message(
            f"{op}: input has {channels} channels, filters.shape[-2] (in_channels) is {fin}",
            "the input's channels equal to, or a multiple of (groups), the filters' in_channels",
            "Check the data_format and the filter layout [*kernel, in_channels, out_channels]."))
    else:
        groups = channels // fin
        if groups > 1 and fout % groups:
            raise ShapeError(message(
                f"{op}: grouped convolution with {groups} groups ({channels} input channels / {fin}) "
                f"and {fout} out_channels", f"out_channels divisible by {groups}", None))

    out_spatial, pads = [], []
    for i in range(rank):
        p = pad if isinstance(pad, str) else pad[i]
        n, k, s, d = spatial[i], kernel[i], strides[i], dilations[i]
        o = _shapes.forward_size(n, k, s, d, p)
        if o is None:
            pb, pa = _shapes.forward_pads(n, k, s, d, p)
            ke = _shapes.effective_kernel(k, d)
            raise ShapeError(message(
                f"{op}: spatial dim {i} has size {n} (padded {n + pb + pa}) but the effective kernel "
                f"(kernel {k}, dilation {d}) spans {ke}",
                f"a padded size of at least {ke}",
                "Use padding='SAME', a smaller kernel or dilation, or more explicit padding."))
        out_spatial.append(o)
        pads.append(_shapes.forward_pads(n, k, s, d, p))
    out_spatial = tuple(out_spatial)
    out_shape = join_layout(batch_shape, out_spatial, fout, channels_first)
    return Plan(op, False, channels_first, batch_shape, tuple(spatial), out_spatial, kernel, strides,
                dilations, tuple(pads), groups, channels, fout, out_shape)


def join_layout(batch_shape, spatial, channels, channels_first):
    if channels_first:
        return tuple(batch_shape) + (channels,) + tuple(spatial)
    return tuple(batch_shape) + tuple(spatial) + (channels,)


def _parse_output_shape(output_shape, op, rank, channels_first):
    if output_shape is None:
        return None
    try:
        items = np.asarray(output_shape)
    except Exception:
        items = None
    if items is None or items.ndim != 1 or not (items.size == 0 or np.issubdtype(items.dtype, np.integer)):
        raise ShapeError(message(f"{op}: output_shape={output_shape!r}",
                                 f"a sequence of {rank + 2} ints in data_format order, or None", None))
    items = [int(v) for v in items.tolist()]
    lengths = (rank + 2, 2) if op == "conv2d_transpose" else (rank + 2,)
    if len(items) not in lengths:
        raise ShapeError(message(
            f"{op}: output_shape={items} has length {len(items)}",
            " or ".join(map(str, lengths)) + " entries in data_format order",
            "Pass output_shape=None to get the natural size."))
    if any(v < 0 for v in items):
        raise ShapeError(message(f"{op}: output_shape={items}", "non-negative sizes", None))
    return items


def transpose_geometry(op, rank, input_shape, filter_shape, strides, padding, data_format, dilations):
    """Validated pieces shared by transpose_plan and conv_transpose_output_shapes."""
    channels_first, _ = data_format_info(op, data_format)
    strides = spatial_values(strides, "strides", op, rank, channels_first, default=None)
    dilations = spatial_values(dilations, "dilations", op, rank, channels_first)
    pad = parse_padding(padding, op, rank, channels_first)
    batch_shape, spatial, channels = _split_layout(input_shape, rank, channels_first, op, "input", False)
    kernel, fout, fin = _filter_dims(filter_shape, rank, op, transpose=True)
    if channels != fin:
        raise ShapeError(message(
            f"{op}: input has {channels} channels, filters.shape[-1] (in_channels) is {fin}",
            "them to be equal (transposed convolutions take no groups)",
            "Transpose filters are laid out [*kernel, out_channels, in_channels]; check the layout and data_format."))
    valid = []
    for i in range(rank):
        p = pad if isinstance(pad, str) else pad[i]
        valid.append(_shapes.transpose_sizes(spatial[i], kernel[i], strides[i], dilations[i], p))
    return channels_first, strides, dilations, pad, batch_shape, spatial, kernel, fout, fin, valid


@_remembered
def transpose_plan(op, rank, input_shape, filter_shape, output_shape, strides, padding, data_format, dilations):
    (channels_first, strides, dilations, pad, batch_shape, spatial, kernel, fout, fin,
     valid) = transpose_geometry(op, rank, input_shape, filter_shape, strides, padding, data_format, dilations)
    requested = _parse_output_shape(output_shape, op, rank, channels_first)
    if requested is None:
        out_spatial = []
        for i in range(rank):
            p = pad if isinstance(pad, str) else pad[i]
            out_spatial.append(_shapes.natural_transpose_size(spatial[i], kernel[i], strides[i], dilations[i], p))
    else:
        if len(requested) == 2 and rank == 2:
            out_spatial = requested
        else:
            b, out_spatial, c = _split_layout(requested, rank, channels_first, op, "output_shape", False)
            if b[0] != batch_shape[0]:
                raise ShapeError(message(
                    f"{op}: output_shape batch is {b[0]}, input batch is {batch_shape[0]}",
                    "the same batch size", None))
            if c != fout:
                raise ShapeError(message(
                    f"{op}: output_shape has {c} channels, filters.shape[-2] (out_channels) is {fout}",
                    "them to be equal", "Transpose filters are laid out [*kernel, out_channels, in_channels]."))
    out_spatial = tuple(out_spatial)
    bad = [i for i in range(rank) if not valid[i] or out_spatial[i] not in valid[i]]
    if bad:
        raise ShapeError(_unreachable_message(op, rank, channels_first, batch_shape, spatial, kernel, strides,
                                              dilations, pad, valid, out_spatial, fout, bad))
    pads = []
    for i in range(rank):
        p = pad if isinstance(pad, str) else pad[i]
        pb = _shapes.transpose_pad_before(spatial[i], out_spatial[i], kernel[i], strides[i], dilations[i], p)
        full = (spatial[i] - 1) * strides[i] + _shapes.effective_kernel(kernel[i], dilations[i])
        pads.append((pb, full - pb - out_spatial[i]))
    out_shape = join_layout(batch_shape, out_spatial, fout, channels_first)
    return Plan(op, True, channels_first, batch_shape, tuple(spatial), out_spatial, kernel, strides, dilations,
                tuple(pads), 1, fin, fout, out_shape)


def _unreachable_message(op, rank, channels_first, batch_shape, spatial, kernel, strides, dilations, pad,
                         valid, out_spatial, fout, bad):
    offset = 2 if channels_first else 1
    parts = []
    for i in bad:
        p = pad if isinstance(pad, str) else pad[i]
        sizes = " or ".join(map(str, valid[i])) if valid[i] else "none"
        parts.append(
            f"output_shape[{i + offset}]={out_spatial[i]} is not reachable: for input size {spatial[i]}, "
            f"kernel {kernel[i]}, stride {strides[i]}, dilation {dilations[i]}, {_describe_pad(p)} "
            f"the valid sizes are {sizes}")
    text = f"{op}: " + "; ".join(parts) + "."
    if all(valid):
        shapes = [list(join_layout(batch_shape, combo, fout, channels_first))
                  for combo in itertools.product(*valid)]
        shown = ", ".join(map(str, shapes[:8])) + (", ..." if len(shapes) > 8 else "")
        text += f" Valid output_shapes are {shown}; output_shape=None picks the natural size."
    else:
        text += " No output size maps back to this input; change the padding, kernel or stride."
    return text


# --- arrays, dtypes and backends ---------------------------------------------

# NumPy arrays of these dtypes, both the same: check_arrays' answer at once
_NATIVE = frozenset((np.dtype(np.float32), np.dtype(np.float64)))


def check_arrays(op, input, filters):
    """(x, w, compute dtype) with dtype rules applied; arrays are not copied."""
    if type(input) is np.ndarray and type(filters) is np.ndarray and input.dtype in _NATIVE \
            and filters.dtype == input.dtype:
        return input, filters, input.dtype
    x, w = _as_array(input), _as_array(filters)
    for name, a in (("input", x), ("filters", w)):
        dt = np.dtype(a.dtype)
        if dt.kind != "f" or dt.itemsize not in (2, 4, 8):
            raise TypeError(message(f"{op}: {name} has dtype {dt}", "float16, float32 or float64",
                                    f"Convert with {name}.astype(np.float32)."))
    xd, wd = np.dtype(x.dtype).newbyteorder("="), np.dtype(w.dtype).newbyteorder("=")
    if xd != wd:
        raise TypeError(message(f"{op}: input is {xd} but filters are {wd}", "the same dtype for both",
                                f"Convert one of them, e.g. filters.astype(np.{xd})."))
    compute = np.dtype(np.float32) if xd == np.float16 else xd
    return x, w, compute


def is_device_array(a):
    """A CUDA device array: anything with `__cuda_array_interface__` (CuPy,
    PyTorch CUDA tensors, Numba), or a Numba device array (which under the
    CUDA simulator has only `__cuda_ndarray__`)."""
    # Numba's own arrays first: their __cuda_array_interface__ builds a dict per access.
    return bool(getattr(a, "__cuda_ndarray__", False)) or hasattr(a, "__cuda_array_interface__")


def _as_array(a):
    """Device arrays as Numba device arrays (a view: NumPy dtype and shape,
    no copy); host arrays as they are, or through np.asarray."""
    if is_device_array(a):
        return backends.get("cuda").as_device_array(a)
    return a if hasattr(a, "dtype") and hasattr(a, "shape") else np.asarray(a)


def choose_backend(backend, *arrays):
    """The backend name; refuses device arrays mixed with host arrays or sent
    to a host backend, and a 'cuda' that cannot run here."""
    if (backend is None or backend == "cpu") and all(type(a) is np.ndarray for a in arrays):
        return "cpu"  # (NumPy arrays are never device arrays)
    on_device = [is_device_array(a) for a in arrays]
    if backend is None:
        backend = "cuda" if any(on_device) else "cpu"
    if backend not in BACKENDS:
        raise ValueError(message(f"backend={backend!r}", " or ".join(map(repr, BACKENDS)) + " or None", None))
    if any(on_device) and not all(on_device):
        where = ["a CUDA device array" if d else "a host (NumPy) array" for d in on_device]
        raise ValueError(message(
            f"input is {where[0]} but filters are {where[-1]}",
            "both on the device or both on the host",
            "Move one of them, e.g. numba.cuda.to_device(filters) or device_array.copy_to_host()."))
    if any(on_device) and backend != "cuda":
        raise ValueError(message(f"CUDA device arrays with backend={backend!r}",
                                 "NumPy arrays for the 'cpu' and 'reference' backends",
                                 "Use backend='cuda' (or None), or copy them to the host first."))
    if backend == "cuda":
        backends.get("cuda").check_available()
    return backend
