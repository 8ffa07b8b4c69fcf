"""Engines, accuracy measures and timing shared by the `fastdeconv` command
line, scripts/compare_frameworks.py and the pytest-benchmark tests.

An *engine* runs one problem (a `fastdeconv.suite.Case`) through one
implementation: fastdeconv's backends, TensorFlow (`tf.nn`), PyTorch
(`torch.nn.functional`) or ONNX Runtime (a one-node ONNX model). Peers get
the call mapped per shared SEMANTICS section 5 (`fastdeconv.porting`):
layouts, SAME padding (asymmetric when the total is odd) and output_shape
become PyTorch padding/output_padding (+ a crop) or ONNX pads/output_padding.
A peer that cannot express a problem raises `Unsupported` with the reason,
so tables can say so instead of dropping the row.

Frameworks are imported lazily, only by the engines that need them; this
module itself needs NumPy only. Peers run on their native layout
(channels-first for PyTorch and ONNX Runtime): the layout conversion of the
input is done once, outside the timed call.
"""

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import porting
from .suite import Case

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN kernels on by default only on CPUs with
# AVX-512 VNNI/BF16 or AMX; elsewhere its float32 convolutions are
# several times slower and refuse channels-first and dilated transposes.
# Compare with (and test against) TF at its best on every CPU.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

FASTDECONV_ENGINES = ("fastdeconv-cpu", "fastdeconv-reference", "fastdeconv-cuda")
PEER_ENGINES = ("tensorflow", "torch", "onnxruntime")
ALL_ENGINES = FASTDECONV_ENGINES + PEER_ENGINES
LABELS = {"fastdeconv-cpu": "fastdeconv cpu", "fastdeconv-reference": "fastdeconv reference",
          "fastdeconv-cuda": "fastdeconv cuda", "tensorflow": "TensorFlow", "torch": "PyTorch",
          "onnxruntime": "ONNX Runtime"}


class Unsupported(Exception):
    """This engine cannot run this problem here (the message says why)."""


# --- problems ----------------------------------------------------------------

def make_case(op, input_shape, kernel, out_channels=None, strides=1, padding="SAME", data_format=None,
              dilations=None, output_shape=None, name="custom"):
    """A `Case` from command-line style pieces: spatial kernel sizes and an
    output channel count instead of a filter shape (filters laid out as
    tf.nn wants them). Validation is left to `porting.geometry`."""
    rank = porting.op_rank(op)
    fmt = data_format or porting.DEFAULT_FORMAT[rank]
    channels_first = fmt.upper().startswith("NC")
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) < 2:
        cin = input_shape[-1] if input_shape else 0
    else:
        cin = input_shape[1] if channels_first else input_shape[-1]
    kernel = tuple(int(v) for v in kernel)
    if len(kernel) == 1 and rank > 1:
        kernel = kernel * rank
    cout = cin if out_channels is None else int(out_channels)
    filt = kernel + ((cout, cin) if op.endswith("_transpose") else (cin, cout))
    return Case(name, op, input_shape, filt, strides, padding=padding,
                output_shape=None if output_shape is None else tuple(output_shape), data_format=fmt,
                dilations=dilations)


def case_geometry(case):
    """`porting.Geometry` of a case (validated as the op would)."""
    return porting.geometry(case.op, case.input_shape, case.filter_shape, case.strides, case.padding,
                            case.data_format, case.dilations, case.output_shape)


def resolved(case):
    """The case with output_shape filled in (natural size when it was None)."""
    if not case.transpose or case.output_shape is not None:
        return case
    g = case_geometry(case)
    return Case(case.name, case.op, case.input_shape, case.filter_shape, case.strides, case.padding,
                tuple(g.plan.out_shape), case.data_format, case.dilations, case.tags)


def flops(case):
    return 2 * case_geometry(case).plan.macs


# --- accuracy ----------------------------------------------------------------

_INT_VIEW = {2: np.int16, 4: np.int32, 8: np.int64}


def _ordered(a):
    """Floats as integers whose order is the float order (adjacent floats differ by 1)."""
    a = np.ascontiguousarray(a)
    i = a.view(_INT_VIEW[a.dtype.itemsize]).astype(np.int64)
    bits = 8 * a.dtype.itemsize
    if bits == 64:
        return np.where(i < 0, np.int64(-2**63) - i, i).astype(np.float64)
    return np.where(i < 0, -(i + 2**(bits - 1)), i).astype(np.float64)


def ulp_distances(a, b):
    """Elementwise distance in units in the last place (of a's dtype) between a and b."""
    a = np.asarray(a)
    b = np.asarray(b, dtype=a.dtype)
    return np.abs(_ordered(a) - _ordered(b))


def ulp_distance(a, b):
    """Largest ULP distance between a and b (0 for empty arrays)."""
    d = ulp_distances(a, b)
    return int(np.max(d)) if d.size else 0


def compare(out, ref):
    """max abs error, relative error max|out - ref| / max|ref| (SPEC), and the
    largest and median ULP distance (in out's dtype, against ref rounded to
    it; the largest is usually at an output that nearly cancels to zero)."""
    out = np.asarray(out)
    ref = np.asarray(ref)
    if out.shape != ref.shape:
        raise ValueError(f"shape {out.shape} differs from {ref.shape}")
    if out.size == 0:
        return {"abs": 0.0, "rel": 0.0, "ulp": 0, "ulp_median": 0.0}
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    scale = float(np.max(np.abs(ref.astype(np.float64))))
    ab = float(np.max(diff))
    ulps = ulp_distances(out, ref.astype(out.dtype))
    return {"abs": ab, "rel": ab / scale if scale > 0 else ab, "ulp": int(np.max(ulps)),
            "ulp_median": float(np.median(ulps))}


def oracle(case, x, w):
    """The float64 reference result (fastdeconv's reference backend on float64 inputs)."""
    import fastdeconv

    fn = getattr(fastdeconv, case.op)
    return fn(*case.args(x.astype(np.float64), w.astype(np.float64)), backend="reference", **case.kwargs())


def accuracy_bar(dtype, peer_errors):
    """SPEC's bar for fastdeconv's relative error against the float64 reference:
    float32 max(err TF, err PyTorch, 2e-6); float64 1e-12; float16 the float32
    bar plus one rounding to half precision (2**-11)."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return 1e-12
    peers = [e for e in peer_errors if e is not None and np.isfinite(e)]
    floor = 2e-6 if dtype == np.float32 else 2e-6 + 2.0 ** -11
    return max(peers + [floor])


# --- engines -----------------------------------------------------------------

@dataclass
class Prepared:
    """A problem ready to run: `run()` computes (what is timed), `fetch(r)`
    turns its result into a NumPy array in the case's data_format."""

    run: object
    fetch: object
    note: str = ""


def _to_cf(a, rank):
    return np.ascontiguousarray(np.moveaxis(a, -1, 1)) if a.ndim == rank + 2 else a


def _from_cf(a, channels_first):
    return a if channels_first else np.moveaxis(a, 1, -1)


def _filters_cf(w, rank):
    """TF filters ([*k, C_a, C_b]) -> PyTorch/ONNX weight ([C_b, C_a, *k]);
    the same permutation for forward and transposed filters (SEMANTICS 5.1)."""
    return np.ascontiguousarray(np.transpose(w, (rank + 1, rank) + tuple(range(rank))))


class Engine:
    name = ""

    def available(self):
        """None when usable here, else a short reason."""
        return None

    def version(self):
        return ""

    def prepare(self, case, x, w):
        raise NotImplementedError


class FastdeconvEngine(Engine):
    def __init__(self, backend):
        self.backend = backend
        self.name = f"fastdeconv-{backend}"

    def available(self):
        if self.backend != "cuda":
            return None
        try:
            from .backends import get

            get("cuda").check_available()
        except ModuleNotFoundError:
            return "no CUDA backend in this build"
        except Exception as e:  # noqa: BLE001 - the reason is shown to the user
            return str(e).split(";")[0]
        return None

    def version(self):
        import fastdeconv

        return fastdeconv.__version__

    def prepare(self, case, x, w):
        import fastdeconv

        fn = getattr(fastdeconv, case.op)
        kw = dict(case.kwargs(), backend=self.backend)
        if self.backend == "cuda":
            from numba import cuda

            xd, wd = cuda.to_device(x), cuda.to_device(w)
            args = case.args(xd, wd)

            def run():
                out = fn(*args, **kw)
                cuda.synchronize()
                return out

            return Prepared(run, lambda r: r.copy_to_host(), "device arrays in and out")
        args = case.args(x, w)
        return Prepared(lambda: fn(*args, **kw), np.asarray)


def _import_tensorflow():
    """import tensorflow, with its C++ start-up log lines (written straight to
    file descriptor 2) kept off the terminal; Python errors still raise."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    saved = None
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        saved = None
    try:
        import tensorflow as tf

        tf.constant(0.0)  # the oneDNN banner comes with the first op
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
    return tf


class TensorFlowEngine(Engine):
    name = "tensorflow"

    def available(self):
        try:
            _import_tensorflow()
        except ImportError:
            return "not installed"
        return None

    def version(self):
        return _import_tensorflow().__version__

    def prepare(self, case, x, w):
        tf = _import_tensorflow()
        g = case_geometry(case)
        p = g.plan
        rank = p.rank
        if not isinstance(g.padding, str) and rank != 2:
            raise Unsupported(f"tf.nn.{case.op} takes no explicit padding (only conv2d and conv2d_transpose do)")
        fn = getattr(tf.nn, case.op)
        formats = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}[rank]

        def build(channels_first):
            """The tf.nn call in one layout (full-length strides/dilations: every op takes them)."""
            full = lambda v: [1, 1, *v] if channels_first else [1, *v, 1]  # noqa: E731
            if isinstance(g.padding, str):
                pad = g.padding
            else:
                pairs = [list(t) for t in g.padding]
                pad = [[0, 0], [0, 0], *pairs] if channels_first else [[0, 0], *pairs, [0, 0]]
            kw = {"data_format": formats[channels_first], "dilations": full(p.dilations)}
            strides = full(p.strides)
            xs = x
            if channels_first != p.channels_first:  # only ever channels-first -> channels-last
                xs = np.ascontiguousarray(np.moveaxis(x, 1, -1))
            tx, tw = tf.constant(xs), tf.constant(w)
            if p.transpose:
                shape = [p.out_shape[0], *p.out_spatial, p.out_channels] if not channels_first else \
                    [p.out_shape[0], p.out_channels, *p.out_spatial]
                return lambda: fn(tx, tw, shape, strides, pad, **kw)
            return lambda: fn(tx, tw, strides, pad, **kw)

        run = build(p.channels_first)
        try:
            run()
            return Prepared(run, lambda r: r.numpy())
        except Exception as e:  # noqa: BLE001
            first = _first_line(e)
            if not p.channels_first:
                raise Unsupported(f"TF refused: {first}") from None
        # CPU TF runs channels-first only on its oneDNN path: try channels-last.
        run = build(False)
        try:
            run()
        except Exception as e:  # noqa: BLE001
            raise Unsupported(f"TF refused: {_first_line(e)}") from None
        return Prepared(run, lambda r: np.moveaxis(r.numpy(), -1, 1), f"channels-last ({first})")


def _first_line(e):
    text = str(e).strip().splitlines()
    text = text[0] if text else type(e).__name__
    return text if len(text) < 160 else text[:157] + "..."


class TorchEngine(Engine):
    name = "torch"

    def available(self):
        try:
            import torch  # noqa: F401
        except ImportError:
            return "not installed"
        return None

    def version(self):
        import torch

        return torch.__version__

    def prepare(self, case, x, w):
        import torch
        import torch.nn.functional as F

        g = case_geometry(case)
        p = g.plan
        rank = p.rank
        if len(p.batch_shape) != 1:
            raise Unsupported("PyTorch takes a single batch dim")
        xt = torch.from_numpy(_to_cf(x, rank) if not p.channels_first else np.ascontiguousarray(x))
        wt = torch.from_numpy(_filters_cf(w, rank))
        note = ""
        if p.transpose:
            a = porting.torch_transpose(g)
            conv = getattr(F, f"conv_transpose{rank}d")
            crop = a["crop"]
            sl = (slice(None), slice(None)) + tuple(slice(c0, c0 + o) for (c0, _), o in zip(crop, p.out_spatial))
            if any(c0 or c1 for c0, c1 in crop):
                note = "crop"

            def run():
                with torch.inference_mode():
                    return conv(xt, wt, stride=tuple(p.strides), padding=tuple(a["padding"]),
                                output_padding=tuple(a["output_padding"]), dilation=tuple(p.dilations))[sl]
        else:
            a = porting.torch_forward(g)
            conv = getattr(F, f"conv{rank}d")
            kw = dict(stride=tuple(p.strides), dilation=tuple(p.dilations), groups=p.groups)
            if a["pre_pad"] and a.get("same_string"):
                kw["padding"] = "same"
                pre = None
            else:
                kw["padding"] = tuple(a["padding"])
                pre = a["pre_pad"]
                note = "F.pad" if pre else ""

            def run():
                with torch.inference_mode():
                    return conv(F.pad(xt, pre) if pre else xt, wt, **kw)

        try:
            run()
        except Exception as e:  # noqa: BLE001
            raise Unsupported(f"PyTorch refused: {_first_line(e)}") from None
        return Prepared(run, lambda r: _from_cf(r.numpy(), p.channels_first), note)


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"

    def available(self):
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            return "not installed (needs onnx and onnxruntime)"
        return None

    def version(self):
        import onnxruntime

        return onnxruntime.__version__

    def prepare(self, case, x, w):
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        g = case_geometry(case)
        p = g.plan
        rank = p.rank
        if len(p.batch_shape) != 1:
            raise Unsupported("ONNX Conv takes a single batch dim")
        elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
                np.dtype(np.float16): TensorProto.FLOAT16}[np.dtype(x.dtype)]
        xc = _to_cf(x, rank) if not p.channels_first else np.ascontiguousarray(x)
        attrs = porting.onnx_transpose(g) if p.transpose else porting.onnx_forward(g)
        op_type = attrs.pop("op_type")
        node = helper.make_node(op_type, ["x", "w"], ["y"], **attrs)
        graph = helper.make_graph(
            [node], "conv", [helper.make_tensor_value_info("x", elem, list(xc.shape))],
            [helper.make_tensor_value_info("y", elem, [p.out_shape[0], p.out_channels, *p.out_spatial])],
            [numpy_helper.from_array(_filters_cf(w, rank), "w")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        try:
            onnx.checker.check_model(model)
            ort.set_default_logger_severity(3)
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            # Its pool threads otherwise spin after each run, for longer than
            # the pause before the next engine's sample: with them, the other
            # engines' 2-thread calls ran up to 1.5x slower (VGG 14x14x512:
            # fastdeconv 21 -> 30 ms, TF 21 -> 33 ms).
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
            sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            feed = {"x": xc}
            run = lambda: sess.run(None, feed)[0]  # noqa: E731
            run()
        except Exception as e:  # noqa: BLE001
            raise Unsupported(f"ONNX Runtime refused: {_first_line(e)}") from None
        return Prepared(run, lambda r: _from_cf(r, p.channels_first))


def engine(name):
    if name.startswith("fastdeconv-"):
        return FastdeconvEngine(name.split("-", 1)[1])
    return {"tensorflow": TensorFlowEngine, "torch": TorchEngine, "onnxruntime": OnnxRuntimeEngine}[name]()


def engines(names=ALL_ENGINES):
    """(usable engines, {name: reason} of the unusable ones)."""
    usable, skipped = [], {}
    for name in names:
        e = engine(name)
        reason = e.available()
        if reason:
            skipped[name] = reason
        else:
            usable.append(e)
    return usable, skipped


# --- timing ------------------------------------------------------------------

def time_round_robin(runs, repeat=5, target=0.005, max_number=50, settle=0.02, warm=True):
    """Median seconds per call for each callable, timed in alternation
    (a, b, c, then b, c, a, ...: each engine follows each other one) so
    machine noise hits all alike. Short calls are repeated `number` times
    per sample (about `target` seconds a sample). Before each sample the
    caller sleeps `settle` seconds: thread pools that spin after a call
    (ONNX Runtime's, OpenMP's) would otherwise take the cores from the
    next engine timed, which no single-framework user sees. With `warm`,
    one untimed call follows the pause: after it, a shared VM sometimes
    leaves the second core away for a whole call (a 2-thread call ran at
    its 1-thread time in a third to half of the samples;
    benchmarks/NOTES.md section 61), so a sample times calls that follow
    calls, as in a model's loop."""
    numbers = {}
    for name, fn in runs.items():
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        numbers[name] = int(min(max_number, max(1, target // max(dt, 1e-7))))
    samples = {name: [] for name in runs}
    names = list(runs)
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn, n = runs[name], numbers[name]
            if settle:
                time.sleep(settle)
            if warm:
                fn()
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t0) / n)
    return {name: float(np.median(v)) for name, v in samples.items()}


def gemm_peak(n=4096, repeat=3):
    """Best float32 GFLOP/s of a NumPy n x n x n matmul (this machine's BLAS peak)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


@dataclass
class Result:
    case: str
    op: str
    engine: str
    seconds: float = None
    gflops: float = None
    status: str = "ok"  # ok, unsupported, mismatch, error
    note: str = ""
    rel_err: float = None  # against the float64 reference (when measured)
    diff_vs_fastdeconv: float = None
    extra: dict = field(default_factory=dict)

    def as_dict(self):
        return {k: v for k, v in self.__dict__.items()}


def run_case(case, usable, repeat=5, dtype=np.float32, with_oracle=False, tolerance=1e-3, seed=0):
    """Run one case through every usable engine: prepare, check the result
    (against the float64 reference when `with_oracle`, always against
    fastdeconv-cpu when it ran), then time them in alternation."""
    case = resolved(case)
    x, w = case.arrays(dtype=dtype, seed=seed)
    f = flops(case)
    ref = oracle(case, x, w) if with_oracle else None
    results, runs, outs = {}, {}, {}
    for e in usable:
        r = Result(case.name, case.op, e.name)
        results[e.name] = r
        try:
            prep = e.prepare(case, x, w)
            out = prep.fetch(prep.run())
        except Unsupported as u:
            r.status, r.note = "unsupported", str(u)
            continue
        except Exception as ex:  # noqa: BLE001 - a broken engine must not end the run
            r.status, r.note = "error", _first_line(ex)
            continue
        r.note = prep.note
        outs[e.name] = out
        if ref is not None:
            r.rel_err = compare(out, ref)["rel"]
        runs[e.name] = prep.run
    base = outs.get("fastdeconv-cpu")
    for name, out in outs.items():
        r = results[name]
        if base is not None and name != "fastdeconv-cpu":
            r.diff_vs_fastdeconv = compare(out, base)["rel"]
        bad = r.rel_err if r.rel_err is not None else r.diff_vs_fastdeconv
        if bad is not None and not bad <= tolerance:
            r.status = "mismatch"
            r.note = (r.note + "; " if r.note else "") + f"differs by {bad:.1e}: not timed"
            runs.pop(name, None)
    if runs and repeat > 0:
        times = time_round_robin(runs, repeat=repeat)
        for name, t in times.items():
            results[name].seconds = t
            results[name].gflops = f / t / 1e9
    return list(results.values())


def run_suite(cases, usable, repeat=5, dtype=np.float32, with_oracle=False, progress=None):
    """Every case through every engine; `progress(i, n, case)` before each case."""
    out = []
    for i, case in enumerate(cases):
        if progress:
            progress(i, len(cases), case)
        out.extend(run_case(case, usable, repeat=repeat, dtype=dtype, with_oracle=with_oracle))
    if progress:
        progress(len(cases), len(cases), None)
    return out


class Progress:
    """A one-line progress bar on stderr (no dependencies)."""

    def __init__(self, stream=None, width=28):
        self.stream = stream or sys.stderr
        self.width = width
        self.t0 = time.perf_counter()

    def __call__(self, i, n, case):
        done = int(self.width * i / max(n, 1))
        bar = "#" * done + "-" * (self.width - done)
        label = case.name if case is not None else "done"
        elapsed = time.perf_counter() - self.t0
        self.stream.write(f"\r[{bar}] {i}/{n} {elapsed:5.0f}s {label:<40.40}")
        if case is None:
            self.stream.write("\n")
        self.stream.flush()


# --- reporting ---------------------------------------------------------------

def machine_info():
    """A short description of this machine and the software versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": sys.version.split()[0], "numpy": np.__version__}
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    try:
        import numba

        info["numba"] = numba.__version__
        from .backends import cpu_simd

        info["simd"] = ("AVX-512" if cpu_simd.VBYTES == 64 else "AVX2") + f" tiles ({cpu_simd.VBYTES}-byte vectors)"
    except ImportError:
        pass
    info["tf_onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "TF's default")
    try:
        import fastdeconv

        info["fastdeconv"] = fastdeconv.__version__
        root = os.path.dirname(os.path.dirname(os.path.abspath(fastdeconv.__file__)))
        commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        if commit:
            info["commit"] = commit
    except Exception:  # noqa: BLE001
        pass
    return info


def fmt_ms(s):
    return "" if s is None else (f"{s * 1e3:.3f}" if s < 0.01 else f"{s * 1e3:.1f}")


def fmt_gf(g):
    if g is None:
        return ""
    return f"{g:.2g}" if g < 1 else (f"{g:.2f}" if g < 10 else f"{g:.1f}")


def gflops_table(results, engine_names):
    """Markdown: one row per case, GFLOP/s per engine (or why it did not run)."""
    cases = list(dict.fromkeys(r.case for r in results))
    by = {(r.case, r.engine): r for r in results}
    lines = ["| case | " + " | ".join(LABELS.get(n, n) for n in engine_names) + " |",
             "|---|" + "---:|" * len(engine_names)]
    for c in cases:
        cells = []
        for n in engine_names:
            r = by.get((c, n))
            if r is None:
                cells.append("")
            elif r.gflops is not None:
                cells.append(fmt_gf(r.gflops) + (" *" if r.note else ""))
            else:
                cells.append(r.status)
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def geomean(values):
    values = [v for v in values if v and v > 0]
    return float(np.exp(np.mean(np.log(values)))) if values else None


def plot_gflops(results, engine_names, path, title="GFLOP/s per case"):
    """A grouped horizontal bar chart (PNG). Returns None, or why no chart was made."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib): no chart"
    cases = list(dict.fromkeys(r.case for r in results))
    by = {(r.case, r.engine): r for r in results}
    names = [n for n in engine_names if any(by.get((c, n)) and by[(c, n)].gflops for c in cases)]
    height = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(cases) * max(len(names), 1) * 0.6 + 1.5))
    for j, n in enumerate(names):
        ys = [i + j * height for i in range(len(cases))]
        vals = [by[(c, n)].gflops if by.get((c, n)) and by[(c, n)].gflops else 0 for c in cases]
        ax.barh(ys, vals, height=height, label=LABELS.get(n, n))
    ax.set_yticks([i + height * (len(names) - 1) / 2 for i in range(len(cases))])
    ax.set_yticklabels(cases, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("GFLOP/s (2 x multiply-adds / median time; log scale)")
    ax.set_title(title, fontsize=10, pad=28)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=max(len(names), 1), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
