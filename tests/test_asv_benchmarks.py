"""The asv benchmarks (asv_bench/benchmarks) run against this commit: their
case lists are the suite's, and one small case of each class goes through
setup and its timed methods as asv would call them (asv itself is a bench
extra; its runs are not part of the tests)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from fastdeconv import layers
from fastdeconv.suite import CASES, LAYOUT_CASES, SMALL_CASES

BENCH = Path(__file__).resolve().parents[1] / "asv_bench" / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"asv_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ops():
    return _load("ops")


def test_case_lists_are_the_suites(ops):
    """The names parsed from suite.py's source are the suite's, in order."""
    assert ops.NAMES == [c.name for c in CASES]
    assert ops.SMALL_NAMES == [c.name for c in SMALL_CASES]
    assert ops.LAYOUT_NAMES == [c[0] for c in LAYOUT_CASES]
    assert ops.FIRST_CALL and set(ops.FIRST_CALL) <= set(ops.NAMES)


def test_ops_times_and_tracks_a_case(ops):
    bench = ops.Ops()
    bench.setup("src_c2t_3x3x1_to_6")
    bench.time_cpu("src_c2t_3x3x1_to_6")
    bench.peakmem_cpu("src_c2t_3x3x1_to_6")
    assert bench.track_gflops("src_c2t_3x3x1_to_6") > 0
    with pytest.raises(NotImplementedError):
        bench.setup("no such case")


def test_small_calls_time_a_case(ops):
    bench = ops.SmallCalls()
    bench.setup(ops.SMALL_NAMES[0])
    bench.time_cpu(ops.SMALL_NAMES[0])
    with pytest.raises(NotImplementedError):
        bench.setup("src_c2t_3x3x1_to_6")  # a suite case, not a small one


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_layouts_time_a_case(ops, layout):
    bench = ops.Layouts()
    bench.setup("conv3d 16^3 x 32 -> 32 k3", layout)
    bench.time_cpu("conv3d 16^3 x 32 -> 32 k3", layout)


def test_first_call_statements_compile(ops):
    """FirstCall's child code (run by asv in a fresh process) is valid
    Python for each of its cases, cold and cached."""
    bench = ops.FirstCall()
    for name in ops.FIRST_CALL:
        bench.setup(name)
        for stmt, setup in (bench.timeraw_cold(name), bench.timeraw_cached(name)):
            compile(setup, name, "exec")
            compile(stmt, name, "exec")


def test_models_build():
    """The benchmarked models build from fastdeconv.layers with their
    seeded weights (their predict is what asv times)."""
    models = _load("models")
    for name in models.MODELS:
        model = models._randomize(getattr(models, name)(layers))
        assert model.input_shape[1:] and all(np.all(np.isfinite(w)) for w in model.get_weights())
