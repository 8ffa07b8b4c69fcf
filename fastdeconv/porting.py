"""How to spell a fastdeconv / tf.nn convolution in Keras, PyTorch and ONNX.

Pure integer rules, one spatial dim at a time, on top of `_shapes` (the
only home of TF's shape rules) and `_args` (argument validation). Used by
`fastdeconv shapes` to tell a user how to port a layer, and by
`fastdeconv.bench` to run the same computation through the other
frameworks. The rules follow shared SEMANTICS sections 4 (Keras
output_padding) and 5 (PyTorch and ONNX):

PyTorch's ConvTranspose crops `padding` from *both* ends of the un-cropped
length L = (n-1)*s + k_eff and appends `output_padding` (< max(s, d)) at the
end; TF crops `pb` from the start and the rest from the end. Where the two
cannot agree (an odd SAME total puts the extra unit at the end) the PyTorch
result is sliced afterwards (`crop`).

ONNX's ConvTranspose takes begin and end pads separately plus an
`output_padding` of trailing positions, so every TF case maps exactly.
"""

from dataclasses import dataclass

from . import _args, _shapes

__all__ = ["Geometry", "geometry", "torch_transpose_dim", "torch_forward", "torch_transpose",
           "onnx_forward", "onnx_transpose", "keras_transpose", "keras_forward"]

_OPS = ("conv1d", "conv2d", "conv3d", "conv1d_transpose", "conv2d_transpose", "conv3d_transpose")
DEFAULT_FORMAT = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


@dataclass(frozen=True)
class Geometry:
    """A validated call (a `_args.Plan`) plus the original padding spec."""

    plan: object
    padding: object  # "SAME", "VALID" or a tuple of (before, after) pairs
    data_format: str

    @property
    def rank(self):
        return self.plan.rank

    def pads(self):
        """(pb, pa) per dim; for a transpose pa = L - pb - O (negative: trailing zeros)."""
        return self.plan.pads

    def full_lengths(self):
        """Un-cropped length L per dim of a transpose."""
        p = self.plan
        return tuple((n - 1) * s + _shapes.effective_kernel(k, d)
                     for n, k, s, d in zip(p.in_spatial, p.kernel, p.strides, p.dilations))


def op_rank(op):
    if op not in _OPS:
        raise ValueError(f"unknown op {op!r}; expected one of {', '.join(_OPS)}")
    return int(op[4])


def geometry(op, input_shape, filter_shape, strides, padding, data_format=None, dilations=None,
             output_shape=None):
    """Validate a call exactly as the op would (raises ShapeError/ValueError)."""
    rank = op_rank(op)
    fmt = data_format or DEFAULT_FORMAT[rank]
    channels_first, fmt = _args.data_format_info(op, fmt)
    if op.endswith("_transpose"):
        plan = _args.transpose_plan(op, rank, input_shape, filter_shape, output_shape, strides, padding, fmt,
                                    dilations)
    else:
        plan = _args.forward_plan(op, rank, input_shape, filter_shape, strides, padding, fmt, dilations)
    pad = _args.parse_padding(padding, op, rank, channels_first)
    return Geometry(plan, pad, fmt)


# --- PyTorch -----------------------------------------------------------------

def torch_transpose_dim(n, k, s, d, pb, o):
    """(padding, output_padding, crop_start, crop_end) for one dim of a
    transposed conv whose TF result is full[pb : pb + o].

    PyTorch returns full[p : L - p + op] (positions past L are zeros) and
    needs 0 <= op < max(s, d). Prefer p = pb (no slicing at the start); an
    odd SAME total leaves one extra position at the end, cropped afterwards.
    """
    L = (n - 1) * s + _shapes.effective_kernel(k, d)
    limit = max(s, d)
    p = pb
    while p > 0 and pb + o - L + p >= limit:
        p -= 1
    op = max(0, pb + o - L + p)
    return p, op, pb - p, (L - p + op) - (pb + o)


def torch_forward(g):
    """PyTorch arguments for a forward conv: symmetric pads go to `padding`;
    asymmetric ones need F.pad first (stride 1 SAME also matches padding='same')."""
    p = g.plan
    pads = p.pads
    symmetric = all(a == b for a, b in pads)
    out = {"stride": list(p.strides), "dilation": list(p.dilations), "groups": p.groups,
           "in_channels": p.in_channels, "out_channels": p.out_channels, "kernel_size": list(p.kernel)}
    if symmetric:
        out.update(padding=[a for a, _ in pads], pre_pad=None)
    else:
        # F.pad lists the last dim first: (before_W, after_W, before_H, after_H, ...)
        flat = [v for a, b in reversed(pads) for v in (a, b)]
        out.update(padding=[0] * p.rank, pre_pad=flat)
        if g.padding == "SAME" and all(s == 1 for s in p.strides):
            out["same_string"] = True  # padding='same' is exact here (stride 1 only)
    return out


def torch_transpose(g):
    p = g.plan
    dims = [torch_transpose_dim(n, k, s, d, pb, o) for n, k, s, d, (pb, _), o in
            zip(p.in_spatial, p.kernel, p.strides, p.dilations, p.pads, p.out_spatial)]
    return {"stride": list(p.strides), "dilation": list(p.dilations), "kernel_size": list(p.kernel),
            "in_channels": p.in_channels, "out_channels": p.out_channels,
            "padding": [t[0] for t in dims], "output_padding": [t[1] for t in dims],
            "crop": [[t[2], t[3]] for t in dims]}


def describe_torch(g):
    """One line of PyTorch code (channels-first tensors) for this geometry."""
    p = g.plan
    n = p.rank
    if p.transpose:
        t = torch_transpose(g)
        text = (f"nn.ConvTranspose{n}d({t['in_channels']}, {t['out_channels']}, kernel_size={tuple(p.kernel)}, "
                f"stride={tuple(p.strides)}, padding={tuple(t['padding'])}, "
                f"output_padding={tuple(t['output_padding'])}, dilation={tuple(p.dilations)})")
        if any(a or b for a, b in t["crop"]):
            sl = ", ".join(f"{a or ''}:{-b if b else ''}" for a, b in t["crop"])
            text += f", then y = y[..., {sl}]"
        return text
    t = torch_forward(g)
    text = (f"nn.Conv{n}d({p.in_channels}, {p.out_channels}, kernel_size={tuple(p.kernel)}, "
            f"stride={tuple(p.strides)}, padding={tuple(t['padding'])}, dilation={tuple(p.dilations)}"
            + (f", groups={p.groups}" if p.groups > 1 else "") + ")")
    if t["pre_pad"]:
        text = f"x = F.pad(x, {tuple(t['pre_pad'])}), then " + text
        if t.get("same_string"):
            text += " (or padding='same' without F.pad)"
    return text


# --- ONNX --------------------------------------------------------------------

def onnx_forward(g):
    p = g.plan
    return {"op_type": "Conv", "strides": list(p.strides), "dilations": list(p.dilations),
            "pads": [a for a, _ in p.pads] + [b for _, b in p.pads], "group": p.groups,
            "kernel_shape": list(p.kernel)}


def onnx_transpose(g):
    p = g.plan
    return {"op_type": "ConvTranspose", "strides": list(p.strides), "dilations": list(p.dilations),
            "pads": [a for a, _ in p.pads] + [max(b, 0) for _, b in p.pads],
            "output_padding": [max(-b, 0) for _, b in p.pads], "kernel_shape": list(p.kernel)}


def describe_onnx(g):
    a = onnx_transpose(g) if g.plan.transpose else onnx_forward(g)
    keys = ["pads", "output_padding"] if g.plan.transpose else ["pads"]
    return f"{a['op_type']}(" + ", ".join(f"{k}={a[k]}" for k in keys) + ")"


# --- Keras -------------------------------------------------------------------

def _keras_format(g):
    return "channels_first" if g.plan.channels_first else "channels_last"


def keras_transpose(g):
    """Keras Conv*Transpose arguments reaching this output_shape, or why not.

    Returns a dict: `expressible` (bool), `output_padding` (None, a list, or
    absent), `reason` when not expressible, and `workaround`: padding='valid'
    with an output_padding followed by Cropping*D, which reaches every size.
    """
    p = g.plan
    n_dims = p.rank
    base = {"filters": p.out_channels, "kernel_size": list(p.kernel), "strides": list(p.strides),
            "dilation_rate": list(p.dilations), "data_format": _keras_format(g)}
    # Workaround for anything: VALID with output_padding q (< s), then crop.
    work_q, work_crop = [], []
    for n, k, s, d, (pb, pa), o in zip(p.in_spatial, p.kernel, p.strides, p.dilations, p.pads, p.out_spatial):
        L = (n - 1) * s + _shapes.effective_kernel(k, d)
        q = max(0, -pa)
        work_q.append(q)
        work_crop.append([pb, L + q - pb - o])
    workaround = {"padding": "valid", "output_padding": work_q, "cropping": work_crop}
    reason = None
    if any(s > 1 for s in p.strides) and any(d > 1 for d in p.dilations):
        reason = "Keras refuses strides > 1 together with dilation_rate > 1"
        workaround = None
    elif not isinstance(g.padding, str):
        reason = "Keras takes only padding='same' or 'valid' (no explicit pads)"
    if reason:
        return dict(base, expressible=False, reason=reason, workaround=workaround)
    pad = g.padding.lower()
    natural, values, ok = True, [], True
    for n, k, s, d, o in zip(p.in_spatial, p.kernel, p.strides, p.dilations, p.out_spatial):
        ke = _shapes.effective_kernel(k, d)
        natural &= o == _shapes.natural_transpose_size(n, k, s, d, g.padding)
        q = o - (n - 1) * s - (ke if pad == "valid" else ke % 2)
        values.append(q)
        ok &= 0 <= q < s
    if natural:
        return dict(base, padding=pad, expressible=True, output_padding=None, workaround=None)
    if ok:
        return dict(base, padding=pad, expressible=True, output_padding=values, workaround=None)
    bad = [i for i in range(n_dims) if not 0 <= values[i] < max(p.strides[i], 1)]
    return dict(base, padding=pad, expressible=False, workaround=workaround,
                reason=f"it would need output_padding={values} but Keras requires 0 <= output_padding < strides "
                       f"(dim {', '.join(map(str, bad))})")


def keras_forward(g):
    p = g.plan
    base = {"filters": p.out_channels, "kernel_size": list(p.kernel), "strides": list(p.strides),
            "dilation_rate": list(p.dilations), "groups": p.groups, "data_format": _keras_format(g)}
    if any(s > 1 for s in p.strides) and any(d > 1 for d in p.dilations):
        return dict(base, expressible=False, reason="Keras refuses strides > 1 together with dilation_rate > 1")
    if isinstance(g.padding, str):
        return dict(base, padding=g.padding.lower(), expressible=True)
    return dict(base, padding="valid", expressible=True, zero_padding=[list(t) for t in g.padding])


def _pairs(n, pairs):
    """Keras spelling of per-dim (before, after) pairs: 1-D layers take one pair."""
    pairs = tuple(tuple(c) for c in pairs)
    return pairs[0] if n == 1 else pairs


def describe_keras(g):
    n = g.rank
    fmt = "" if not g.plan.channels_first else ", data_format='channels_first'"
    if g.plan.transpose:
        a = keras_transpose(g)
        head = f"layers.Conv{n}DTranspose({a['filters']}, {tuple(a['kernel_size'])}, strides={tuple(a['strides'])}"
        dil = f", dilation_rate={tuple(a['dilation_rate'])}" if any(v > 1 for v in a["dilation_rate"]) else ""
        if a["expressible"]:
            op = "" if a["output_padding"] is None else f", output_padding={tuple(a['output_padding'])}"
            return f"{head}, padding='{a['padding']}'{op}{dil}{fmt})"
        text = f"not expressible: {a['reason']}"
        w = a.get("workaround")
        if w:
            text += (f"; instead {head}, padding='valid', output_padding={tuple(w['output_padding'])}{dil}{fmt})"
                     f" then layers.Cropping{n}D({_pairs(n, w['cropping'])}{fmt})")
        return text
    a = keras_forward(g)
    if not a["expressible"]:
        return f"not expressible: {a['reason']}"
    dil = f", dilation_rate={tuple(a['dilation_rate'])}" if any(v > 1 for v in a["dilation_rate"]) else ""
    grp = f", groups={a['groups']}" if a["groups"] > 1 else ""
    text = f"layers.Conv{n}D({a['filters']}, {tuple(a['kernel_size'])}, strides={tuple(a['strides'])}, " \
           f"padding='{a['padding']}'{dil}{grp}{fmt})"
    if "zero_padding" in a:
        text = f"layers.ZeroPadding{n}D({_pairs(n, a['zero_padding'])}{fmt}), then " + text
    return text
