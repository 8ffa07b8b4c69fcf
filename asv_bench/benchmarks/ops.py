"""asv benchmarks over the named cases of fastdeconv.suite (cpu backend).

    Ops        time_cpu, peakmem_cpu and track_gflops (GFLOP/s) per case,
               steady state: the kernels are compiled in setup
    Layouts    time_cpu per case of fastdeconv.suite.LAYOUT_CASES on
               channels-last and on channels-first input
    FirstCall  first-call latency in a fresh process: timeraw_cold (empty
               NUMBA_CACHE_DIR: JIT compile + the call) and timeraw_cached
               (the on-disk cache already filled: load + the call)
    SmallCalls time_cpu per case of fastdeconv.suite.SMALL_CASES: calls
               whose time is mostly fastdeconv's own per-call work

The parameter list is today's case names, read from the suite's source
next to this file, so every commit is benchmarked over the same names; a
commit whose own suite (or package) lacks a case skips it through
NotImplementedError in setup. Only names that old commits have are
imported: `fastdeconv.<op>(..., backend=...)` and `fastdeconv.suite`.

Offline, in the current environment (history: scripts/asv_history.py):
    cd asv_bench && asv run --python=same --set-commit-hash $(git rev-parse HEAD)
"""

import ast
import os
import time
from pathlib import Path

_SUITE_SOURCE = Path(__file__).resolve().parents[2] / "fastdeconv" / "suite.py"


def _suite_tree():
    """Today's suite.py, parsed (no import: this file may be run against an
    older package); None if it cannot be read."""
    try:
        return ast.parse(_SUITE_SOURCE.read_text())
    except OSError:
        return None


def _case_names(group="CASES"):
    """Names of the `Case(...)` entries of today's suite.py's `group`."""
    tree = _suite_tree()
    if tree is None:
        try:
            from fastdeconv import suite
        except ImportError:
            return []
        return [c.name for c in getattr(suite, group, ())]
    names = []
    for assign in tree.body:
        if not (isinstance(assign, ast.Assign) and getattr(assign.targets[0], "id", None) == group):
            continue
        for node in ast.walk(assign.value):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Case" and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                names.append(node.args[0].value)
    return names


NAMES = _case_names()
SMALL_NAMES = _case_names("SMALL_CASES")


def _layout_names():
    """Names of today's LAYOUT_CASES entries."""
    tree = _suite_tree()
    for node in tree.body if tree is not None else ():
        if (isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "LAYOUT_CASES"
                and isinstance(node.value, ast.List)):
            return [e.elts[0].value for e in node.value.elts
                    if isinstance(e, ast.Tuple) and e.elts and isinstance(e.elts[0], ast.Constant)]
    return []


LAYOUT_NAMES = _layout_names()
# Small cases whose first call is dominated by compilation, one per kernel family.
FIRST_CALL = [n for n in ("src_c3t_2x2x7x7x64", "src_c2t_64x3_to_128x256", "src_c3d_7x224x224x3_k133",
                          "unet_c3t_32c64_k2s2_ncdhw") if n in NAMES]


def _case(name, group="CASES"):
    """This commit's definition of the case, or NotImplementedError."""
    try:
        from fastdeconv import suite
    except ImportError:
        raise NotImplementedError("no fastdeconv.suite at this commit")
    for case in getattr(suite, group, ()):
        if case.name == name:
            return case
    raise NotImplementedError(f"case {name} is not in this commit's suite")


def _flops(case):
    try:
        return case.flops
    except AttributeError:
        return 2 * case.plan().macs


class Ops:
    params = [NAMES]
    param_names = ["case"]
    timeout = 300

    def setup(self, name):
        case = _case(name)
        import fastdeconv

        x, w = case.arrays()
        self.fn = getattr(fastdeconv, case.op)
        self.args, self.kwargs = case.args(x, w), dict(case.kwargs(), backend="cpu")
        self.flops = _flops(case)
        try:
            self.fn(*self.args, **self.kwargs)  # compile outside the timed region
        except Exception as e:  # an old commit that cannot run this case
            raise NotImplementedError(f"{name}: {type(e).__name__}: {e}")

    def time_cpu(self, name):
        self.fn(*self.args, **self.kwargs)

    def peakmem_cpu(self, name):
        self.fn(*self.args, **self.kwargs)

    def track_gflops(self, name):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            self.fn(*self.args, **self.kwargs)
            best = min(best, time.perf_counter() - t0)
        return self.flops / best / 1e9

    track_gflops.unit = "GFLOP/s"


class Layouts:
    """The same call on channels-last and channels-first input (the ratio
    scripts/bench_layouts.py prints, tracked over commits)."""

    params = [LAYOUT_NAMES, ["channels_last", "channels_first"]]
    param_names = ["case", "layout"]
    timeout = 300

    def setup(self, name, layout):
        try:
            from fastdeconv.suite import LAYOUT_CASES, layout_calls
        except ImportError:
            raise NotImplementedError("no fastdeconv.suite.LAYOUT_CASES at this commit")
        import numpy as np

        case = [c for c in LAYOUT_CASES if c[0] == name]
        if not case:
            raise NotImplementedError(f"layout case {name} is not in this commit's suite")
        last, first = layout_calls(case[0], np.random.default_rng(0))
        self.fn = last if layout == "channels_last" else first
        self.fn()  # compile outside the timed region

    def time_cpu(self, name, layout):
        self.fn()


# Code run in the timed child process: `setup` (untimed) points Numba at a
# cache directory and builds the arrays; the statement is the first call.
_CHILD_SETUP = """
import os, sys, tempfile, subprocess
cache = tempfile.mkdtemp(prefix="fastdeconv-asv-numba-")
os.environ["NUMBA_CACHE_DIR"] = cache
if {warm!r}:
    # Fill the cache from a separate process, so this one only loads it.
    subprocess.run([sys.executable, "-c", {warm_code!r}], check=True, env=dict(os.environ))
import fastdeconv
from fastdeconv.suite import CASES
case = [c for c in CASES if c.name == {name!r}][0]
x, w = case.arrays()
fn = getattr(fastdeconv, case.op)
args, kwargs = case.args(x, w), dict(case.kwargs(), backend="cpu")
"""

# One line (it travels inside the child's setup string).
_WARM = ("import fastdeconv; from fastdeconv.suite import CASES; "
         "case = [c for c in CASES if c.name == {name!r}][0]; x, w = case.arrays(); "
         "getattr(fastdeconv, case.op)(*case.args(x, w), backend='cpu', **case.kwargs())")


class FirstCall:
    """Latency of the first call in a fresh process (JIT compile or cache load)."""

    params = [FIRST_CALL]
    param_names = ["case"]
    timeout = 900
    number = 1
    repeat = 1
    warmup_time = 0

    def setup(self, name):
        _case(name)

    def timeraw_cold(self, name):
        return "fn(*args, **kwargs)", _CHILD_SETUP.format(warm=False, warm_code="", name=name)

    def timeraw_cached(self, name):
        warm = _WARM.format(name=name)
        return "fn(*args, **kwargs)", _CHILD_SETUP.format(warm=True, warm_code=warm, name=name)


class SmallCalls:
    """Small calls (a few thousand to a few hundred thousand multiply-adds):
    the time per call is mostly fastdeconv's own work around the kernel
    (validation, the route, allocation); scripts/bench_small_calls.py
    compares it with the other frameworks'."""

    params = [SMALL_NAMES]
    param_names = ["case"]
    timeout = 120

    def setup(self, name):
        case = _case(name, "SMALL_CASES")
        import fastdeconv

        x, w = case.arrays()
        self.fn = getattr(fastdeconv, case.op)
        self.args, self.kwargs = case.args(x, w), dict(case.kwargs(), backend="cpu")
        self.fn(*self.args, **self.kwargs)  # compile outside the timed region

    def time_cpu(self, name):
        self.fn(*self.args, **self.kwargs)
