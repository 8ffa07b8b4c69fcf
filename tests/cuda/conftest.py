"""The CUDA backend's tests, run in their own pytest process:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda   # CUDA simulator, no GPU needed
    python -m pytest tests/cuda                          # on a GPU (scripts/gpu_check.py)

The default `python -m pytest` does not collect this directory (see
`--ignore=tests/cuda` in pyproject.toml's addopts): NUMBA_ENABLE_CUDASIM is
read once, when numba is first imported, and the CPU tests import numba
without it.

Under the simulator every test runs with tiny tunables (`small_tiles`), so
tiny inputs still take several tiles, blocks and reduction steps. On a GPU
the tests run with the shipped tunables, and `test_cuda.py` adds larger
shapes (marked `hardware`).
"""

import os
import sys

import pytest
from _cuda_support import SIMULATOR, SMALL_TILES, fix_simulator_shared_array_race, set_tunables



def pytest_configure(config):
    config.addinivalue_line("markers", "hardware: larger shapes, run only on a real GPU (not the simulator)")
    if "numba" in sys.modules:
        import numba

        if bool(numba.config.ENABLE_CUDASIM) != SIMULATOR:
            raise pytest.UsageError(
                "numba was imported before NUMBA_ENABLE_CUDASIM took effect; run the CUDA tests in their own "
                "process: NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda")
    if SIMULATOR:
        fix_simulator_shared_array_race()


@pytest.fixture(scope="session", autouse=True)
def cuda_ready():
    """Skip everything, saying how to run it, when CUDA kernels cannot run
    here; scripts/gpu_check.py sets FASTDECONV_REQUIRE_CUDA=1 to fail instead."""
    from fastdeconv.backends import cuda as cuda_backend

    try:
        cuda_backend.check_available()
    except ValueError as exc:
        if os.environ.get("FASTDECONV_REQUIRE_CUDA") == "1":
            raise
        pytest.skip(f"CUDA unavailable ({exc}); run NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda")


@pytest.fixture(scope="session", autouse=True)
def fast_simulator():
    """The simulator runs each CUDA thread as a Python thread and its block
    manager busy-polls them; a short GIL switch interval makes the hand-offs
    about 10x faster on small machines. No effect on results."""
    if not SIMULATOR:
        yield
        return
    old = sys.getswitchinterval()
    sys.setswitchinterval(5e-5)
    yield
    sys.setswitchinterval(old)


@pytest.fixture(autouse=True)
def small_tiles(monkeypatch):
    if SIMULATOR:
        set_tunables(monkeypatch, **SMALL_TILES)
