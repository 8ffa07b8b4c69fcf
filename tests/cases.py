"""Convolution cases described once, run through fastdeconv (any backend,
any argument spelling), TensorFlow (tf_oracle) and the naive loops, plus
the accuracy rules of SPEC.md.

A `Case` holds normalised geometry: one int per spatial dim for strides
and dilations, padding "SAME" / "VALID" / a tuple of pairs, and for a
transpose the chosen output spatial size (`out_spatial`; `natural=True`
means the call passes output_shape=None and expects that size).
"""

import itertools
from dataclasses import dataclass, field

import numpy as np

import fastdeconv
import geometry as geo
import naive

FORWARD_OPS = {1: "conv1d", 2: "conv2d", 3: "conv3d"}
TRANSPOSE_OPS = {1: "conv1d_transpose", 2: "conv2d_transpose", 3: "conv3d_transpose"}
CHANNELS_LAST = {1: "NWC", 2: "NHWC", 3: "NDHWC"}
CHANNELS_FIRST = {1: "NCW", 2: "NCHW", 3: "NCDHW"}


@dataclass
class Case:
    transpose: bool
    n: tuple                  # input spatial sizes
    kernel: tuple
    strides: tuple
    dilations: tuple
    padding: object           # "SAME", "VALID" or ((pb, pa), ...)
    cin: int                  # channels of the input x
    cout: int                 # channels of the result
    batch: int = 1
    channels_first: bool = False
    groups: int = 1           # forward only
    out_spatial: tuple = None  # transpose only: the requested O
    natural: bool = False     # transpose: call with output_shape=None
    spelling: dict = field(default_factory=dict)  # how arguments are written (see `spell`)

    @property
    def rank(self):
        return len(self.n)

    @property
    def op(self):
        return (TRANSPOSE_OPS if self.transpose else FORWARD_OPS)[self.rank]

    @property
    def data_format(self):
        return (CHANNELS_FIRST if self.channels_first else CHANNELS_LAST)[self.rank]

    def pad(self, i):
        return geo.per_dim(self.padding, i)

    def x_shape(self):
        return self._layout(self.n, self.cin)

    def w_shape(self):
        if self.transpose:
            return tuple(self.kernel) + (self.cout, self.cin)
        return tuple(self.kernel) + (self.cin // self.groups, self.cout)

    def out_sizes(self):
        """Expected spatial size of the result (independent shape math)."""
        if self.transpose:
            return tuple(self.out_spatial)
        return tuple(geo.forward_out(self.n[i], self.kernel[i], self.strides[i], self.dilations[i], self.pad(i))
                     for i in range(self.rank))

    def out_shape(self):
        return self._layout(self.out_sizes(), self.cout)

    def pads_before(self):
        """Forward pads, or for a transpose the crop at the start."""
        if self.transpose:
            return tuple(geo.transpose_pad_before(self.n[i], self.out_spatial[i], self.kernel[i], self.strides[i],
                                                  self.dilations[i], self.pad(i)) for i in range(self.rank))
        return tuple(geo.forward_pads(self.n[i], self.kernel[i], self.strides[i], self.dilations[i], self.pad(i))[0]
                     for i in range(self.rank))

    def _layout(self, spatial, channels):
        spatial = tuple(spatial)
        return ((self.batch, channels) + spatial) if self.channels_first else ((self.batch,) + spatial + (channels,))

    def inputs(self, rng, dtype=np.float64, kind="normal"):
        """(x, w): x ~ N(0, 1), w ~ N(0, 1/fan_in) (kind="normal"), or small
        dyadic values whose products and sums are exact in float32
        (kind="dyadic")."""
        if kind == "dyadic":
            x = rng.integers(-8, 9, self.x_shape()) / 8.0
            w = rng.integers(-8, 9, self.w_shape()) / 16.0
        else:
            x = rng.standard_normal(self.x_shape())
            fan_in = max(1, int(np.prod(self.kernel)) * (self.cin if self.transpose else self.cin // self.groups))
            w = rng.standard_normal(self.w_shape()) / np.sqrt(fan_in)
        return x.astype(dtype), w.astype(dtype)

    def __str__(self):
        kind = "T" if self.transpose else "F"
        pad = self.padding if isinstance(self.padding, str) else "E" + "".join(f"{a}{b}" for a, b in self.padding)
        parts = [f"{kind}{self.rank}", "cf" if self.channels_first else "cl", f"n{self.n}", f"k{self.kernel}",
                 f"s{self.strides}", f"d{self.dilations}", pad, f"c{self.cin}-{self.cout}", f"b{self.batch}"]
        if self.groups > 1:
            parts.append(f"g{self.groups}")
        if self.transpose:
            parts.append("Onat" if self.natural else f"O{self.out_spatial}")
        return "_".join(str(p).replace(" ", "") for p in parts)


# --- argument spellings --------------------------------------------------------------

def spell_ints(values, cf, style):
    """strides/dilations in one of TF's forms: 'int', 'list1', 'listN', 'listN2'
    ('int'/'list1' only when all values are equal), or 'none' for all-ones dilations."""
    values = [int(v) for v in values]
    if style == "none":
        assert all(v == 1 for v in values)
        return None
    if style == "int":
        assert len(set(values)) == 1
        return values[0]
    if style == "list1":
        assert len(set(values)) == 1
        return [values[0]]
    if style == "listN":
        return list(values)
    if style == "listN2":
        return [1, 1] + values if cf else [1] + values + [1]
    raise AssertionError(style)


def spell_padding(padding, cf, style):
    """'SAME'/'VALID' as given, lower case or mixed; explicit as N pairs
    (tuples) or N+2 pairs (lists) in data_format order."""
    if isinstance(padding, str):
        return {"upper": padding, "lower": padding.lower(), "mixed": padding.capitalize()}.get(style, padding)
    pairs = [tuple(p) for p in padding]
    if style == "pairsN2":
        pairs = [list(p) for p in pairs]
        return [[0, 0], [0, 0]] + pairs if cf else [[0, 0]] + pairs + [[0, 0]]
    return pairs


def random_spelling(case, rng):
    """A random but valid way of writing the case's arguments."""
    def int_style(values, allow_none):
        opts = ["listN", "listN2"]
        if len(set(values)) == 1:
            opts += ["int", "list1"]
        if allow_none and all(v == 1 for v in values):
            opts += ["none", "none"]
        return str(rng.choice(opts))
    sp = {"strides": int_style(case.strides, False), "dilations": int_style(case.dilations, True)}
    if isinstance(case.padding, str):
        sp["padding"] = str(rng.choice(["upper", "lower", "mixed"]))
    else:
        sp["padding"] = str(rng.choice(["pairsN", "pairsN2"]))
    if case.transpose and not case.natural and case.rank == 2 and rng.random() < 0.3:
        sp["output_shape"] = "spatial"
    return sp


def call_ours(case, x, w, backend, spelling=None, **overrides):
    """fastdeconv.<op>(...) with the case's arguments spelled as asked."""
    sp = dict(case.spelling)
    sp.update(spelling or {})
    cf = case.channels_first
    kwargs = dict(
        strides=spell_ints(case.strides, cf, sp.get("strides", "listN")),
        padding=spell_padding(case.padding, cf, sp.get("padding", "upper")),
        data_format=case.data_format,
        dilations=spell_ints(case.dilations, cf, sp.get("dilations", "listN")),
        backend=backend,
    )
    fn = getattr(fastdeconv, case.op)
    if case.transpose:
        if case.natural:
            kwargs["output_shape"] = None
        elif sp.get("output_shape") == "spatial":
            kwargs["output_shape"] = list(case.out_spatial)
        else:
            kwargs["output_shape"] = list(case.out_shape())
    if case.op == "conv1d":
        kwargs["stride"] = kwargs.pop("strides")
    kwargs.update(overrides)
    return fn(x, w, **kwargs)


def tf_result(case, x, w):
    import tf_oracle
    if case.transpose:
        return tf_oracle.conv_transpose(x, w, case.out_spatial, case.strides, case.padding, case.dilations,
                                        case.channels_first)
    return tf_oracle.conv(x, w, case.strides, case.padding, case.dilations, case.channels_first)


def naive_result(case, x, w):
    """The naive loops, in the case's layout (float64)."""
    xl = np.moveaxis(x, 1, -1) if case.channels_first else x
    if case.transpose:
        y = naive.transpose(xl, w, case.strides, case.dilations, case.pads_before(), case.out_spatial)
    else:
        y = naive.forward(xl, w, case.strides, case.dilations, case.pads_before(), case.out_sizes(), case.groups)
    return np.moveaxis(y, -1, 1) if case.channels_first else y


def reference(case, x, w):
    """fastdeconv's float64 reference backend on the same values."""
    return call_ours(case, np.asarray(x, np.float64), np.asarray(w, np.float64), "reference")


# --- random geometry -----------------------------------------------------------------

def random_case(rng, transpose=None, rank=None, max_n=None, allow_groups=True):
    """A random valid case with small shapes (retries until valid)."""
    while True:
        case = _try_random_case(rng, transpose, rank, max_n, allow_groups)
        if case is not None:
            case.spelling = random_spelling(case, rng)
            return case


def _try_random_case(rng, transpose, rank, max_n, allow_groups):
    transpose = bool(rng.integers(2)) if transpose is None else transpose
    rank = int(rng.choice([1, 1, 2, 2, 3])) if rank is None else rank
    max_n = max_n or {1: 9, 2: 6, 3: 4}[rank]
    n = tuple(int(v) for v in rng.integers(1, max_n + 1, rank))
    kernel = tuple(int(v) for v in rng.integers(1, 5 if rank < 3 else 4, rank))
    strides = tuple(int(v) for v in rng.choice([1, 1, 2, 3], rank))
    dil = rng.random() < 0.35
    dilations = tuple(int(v) for v in (rng.choice([1, 2, 3], rank) if dil else [1] * rank))
    r = rng.random()
    if r < 0.4:
        padding = "SAME"
    elif r < 0.75:
        padding = "VALID"
    else:
        padding = tuple((int(a), int(b)) for a, b in rng.integers(0, 4, (rank, 2)))
    cin = int(rng.integers(1, 5))
    cout = int(rng.integers(1, 5))
    groups = 1
    if not transpose and allow_groups and rng.random() < 0.15:
        groups = int(rng.choice([2, 3]))
        cin = groups * int(rng.integers(1, 3))
        cout = groups * int(rng.integers(1, 3))
    case = Case(transpose, n, kernel, strides, dilations, padding, cin, cout,
                batch=int(rng.integers(1, 3)), channels_first=bool(rng.integers(2)), groups=groups)
    if transpose:
        valid = [geo.transpose_sizes(n[i], kernel[i], strides[i], dilations[i], case.pad(i)) for i in range(rank)]
        if not all(valid):
            return None
        if rng.random() < 0.25:
            case.natural = True
            case.out_spatial = tuple(geo.natural_transpose_size(n[i], kernel[i], strides[i], dilations[i],
                                                                case.pad(i)) for i in range(rank))
        else:
            case.out_spatial = tuple(int(rng.choice(v)) for v in valid)
    elif any(o is None for o in case.out_sizes()):
        return None
    return case


def all_output_sizes(case):
    """Every valid output spatial size combination of a transpose case."""
    valid = [geo.transpose_sizes(case.n[i], case.kernel[i], case.strides[i], case.dilations[i], case.pad(i))
             for i in range(case.rank)]
    return list(itertools.product(*valid))


# --- accuracy rules (SPEC "Accuracy") --------------------------------------------------

F32_FLOOR = 2e-6


def rel_err(out, ref):
    out = np.asarray(out, np.float64)
    ref = np.asarray(ref, np.float64)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    if out.size == 0:
        return 0.0
    scale = np.max(np.abs(ref))
    diff = np.max(np.abs(out - ref))
    return float(diff / scale) if scale > 0 else float(diff)


def assert_float32_bar(ours, tf32, ref64, label=""):
    """err(ours) <= max(err(TF float32), 2e-6), and TF itself near the truth."""
    assert ours.dtype == np.float32, ours.dtype
    e_ours, e_tf = rel_err(ours, ref64), rel_err(tf32, ref64)
    assert e_tf < 1e-4, f"{label}: TF float32 disagrees with the float64 reference: {e_tf:.3g}"
    assert e_ours <= max(e_tf, F32_FLOOR), f"{label}: err(ours)={e_ours:.3g} > max(err(TF)={e_tf:.3g}, 2e-6)"


def assert_float64_close(a, b, label="", tol=1e-12):
    e = rel_err(a, b)
    assert e <= tol, f"{label}: relative error {e:.3g} > {tol:g}"


def assert_float16_rule(ours, x, w, case, backend_ref):
    """float16 = the float32 computation rounded once: within 1 float16 ulp
    of the exact (float64) value rounded to float16, plus the float32
    accumulation error bound (terms * eps32 * sum|terms|), which is far
    below TF's half-precision accumulation error."""
    assert ours.dtype == np.float16, ours.dtype
    ref = backend_ref(case, x.astype(np.float64), w.astype(np.float64))
    absref = backend_ref(case, np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)))
    rounded = ref.astype(np.float16)
    terms = int(np.prod(case.kernel)) * max(case.cin, 1) + 1
    ulp = np.spacing(np.abs(rounded)).astype(np.float64)
    allowed = ulp + terms * np.finfo(np.float32).eps * absref
    diff = np.abs(ours.astype(np.float64) - rounded.astype(np.float64))
    bad = diff > allowed
    assert not bad.any(), (f"{case}: {int(bad.sum())} float16 outputs off by more than 1 ulp "
                           f"(worst {diff[bad].max():.3g}, allowed {allowed[bad].min():.3g})")


def assert_float16_loosely_matches_tf(ours16, tf16, x, w, case):
    """TF's float16 transposes and conv3d accumulate in half precision
    (SEMANTICS 6.2): compare at 5e-3 of the sum of |terms| per output."""
    absref = reference(case, np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)))
    scale = max(float(np.max(absref)) if absref.size else 0.0, 1e-30)
    diff = np.max(np.abs(ours16.astype(np.float64) - tf16.astype(np.float64))) if ours16.size else 0.0
    assert diff <= 5e-3 * scale, f"{case}: float16 differs from TF by {diff:.3g} (scale {scale:.3g})"


def check_against_tf(case, backend, rng, float16=False):
    """The SPEC accuracy rules for one case on one backend:
    float64 vs the reference to 1e-12 and the reference vs TF float64 to
    1e-12; float32 no further from the reference than TF float32 (or 2e-6);
    optionally float16 (rounded-once rule, and loosely TF's value)."""
    x, w = case.inputs(rng)
    expected_shape = case.out_shape()
    ref64 = reference(case, x, w)
    assert ref64.shape == expected_shape, (str(case), ref64.shape, expected_shape)
    assert_float64_close(tf_result(case, x, w), ref64, f"{case}: reference vs TF float64")
    ours64 = call_ours(case, x, w, backend)
    assert ours64.dtype == np.float64 and ours64.shape == expected_shape, (ours64.dtype, ours64.shape)
    assert_float64_close(ours64, ref64, f"{case}: {backend} float64 vs reference")

    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    ref32 = reference(case, x32, w32)
    ours32 = call_ours(case, x32, w32, backend)
    assert ours32.shape == expected_shape
    assert_float32_bar(ours32, tf_result(case, x32, w32), ref32, f"{case} [{backend}]")

    if float16:
        x16, w16 = x.astype(np.float16), w.astype(np.float16)
        ours16 = call_ours(case, x16, w16, backend)
        assert ours16.shape == expected_shape
        assert_float16_rule(ours16, x16, w16, case, reference)
        assert_float16_loosely_matches_tf(ours16, tf_result(case, x16, w16), x16, w16, case)
