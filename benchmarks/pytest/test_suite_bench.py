"""pytest-benchmark over fastdeconv.suite: every case on every engine.

Not part of the default test run (it lives outside `tests/`). Run, save and
compare with:

    python -m pytest benchmarks/pytest --benchmark-autosave          # saves .benchmarks/<machine>/NNNN_*.json
    python -m pytest benchmarks/pytest --benchmark-compare           # compares with the last saved run
    python -m pytest benchmarks/pytest -k "cpu and unet" --benchmark-json=/tmp/unet.json

Ids are `case-engine`, so `-k` picks cases, tags' cases or engines. Each
benchmark's group is its case, so the report puts the engines of one case
side by side; `extra_info` holds GFLOP/s. Peers that are not installed or
cannot express a case are skipped with the reason. `test_first_call`
measures the first call in a fresh process with an empty Numba cache
(compile + run), one round, no warm-up.
"""

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from fastdeconv import bench
from fastdeconv.suite import CASES

ENGINES = ["fastdeconv-cpu", "fastdeconv-cuda", "tensorflow", "torch", "onnxruntime"]
_prepared = {}


def _engine(name):
    e = bench.engine(name)
    why = e.available()
    if why:
        pytest.skip(f"{name}: {why}")
    return e


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(benchmark, case, engine_name):
    e = _engine(engine_name)
    x, w = case.arrays()
    try:
        prep = e.prepare(case, x, w)
    except bench.Unsupported as u:
        pytest.skip(str(u))
    out = prep.fetch(prep.run())  # warm-up / compile, and a sanity check against fastdeconv cpu
    if engine_name != "fastdeconv-cpu":
        base = bench.engine("fastdeconv-cpu").prepare(case, x, w)
        assert bench.compare(out, base.fetch(base.run()))["rel"] < 1e-3
    benchmark.group = case.name
    benchmark.extra_info["op"] = case.op
    benchmark.extra_info["gflop"] = bench.flops(case) / 1e9
    benchmark.extra_info["note"] = prep.note
    benchmark(prep.run)
    benchmark.extra_info["gflops_median"] = bench.flops(case) / 1e9 / benchmark.stats.stats.median


FIRST_CALL = ["src_c3t_2x2x7x7x64", "src_c2t_64x3_to_128x256", "unet_c3t_32c64_k2s2_ncdhw"]

_CHILD = """
import sys, time
import fastdeconv
from fastdeconv.suite import CASES
case = [c for c in CASES if c.name == sys.argv[1]][0]
x, w = case.arrays()
fn = getattr(fastdeconv, case.op)
t0 = time.perf_counter()
fn(*case.args(x, w), backend="cpu", **case.kwargs())
print(time.perf_counter() - t0)
"""


@pytest.mark.parametrize("name", FIRST_CALL)
def test_first_call(benchmark, name):
    """First call in a fresh process with an empty NUMBA_CACHE_DIR (JIT compile + the call)."""
    seconds = []

    def once():
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            out = subprocess.run([sys.executable, "-c", _CHILD, name], env=env, check=True, capture_output=True,
                                 text=True)
        seconds.append(float(out.stdout.strip().splitlines()[-1]))

    benchmark.group = "first call (cold JIT)"
    benchmark.pedantic(once, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info["first_call_seconds_in_child"] = seconds[-1]
