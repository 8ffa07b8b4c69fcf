"""SPEC: results do not depend on the number of threads. The cpu backend
runs the same cases in fresh interpreters with NUMBA_NUM_THREADS set
before numba is imported, and every result must have the same bytes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("_determinism_worker.py")
THREAD_COUNTS = [1, 2, 3]  # 3 > the cores of a 2-core machine still splits work differently


def _run(threads, backend):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, str(WORKER), backend], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(cpu_backend):
    return {t: _run(t, cpu_backend) for t in THREAD_COUNTS}


def test_thread_count_took_effect(runs):
    for threads, result in runs.items():
        assert result["threads"] == threads


def test_same_bits_at_every_thread_count(runs):
    first = runs[THREAD_COUNTS[0]]["hashes"]
    assert len(first) >= 20
    for threads in THREAD_COUNTS[1:]:
        other = runs[threads]["hashes"]
        assert other.keys() == first.keys()
        differ = [name for name in first if first[name] != other[name]]
        assert not differ, f"results differ between 1 and {threads} threads: {differ}"


def test_same_bits_within_a_process(cpu_backend):
    import numpy as np

    import fastdeconv
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 21, 23, 17)).astype(np.float32)
    w = rng.standard_normal((3, 3, 9, 17)).astype(np.float32)
    a = fastdeconv.conv2d_transpose(x, w, None, 2, "SAME", backend=cpu_backend)
    b = fastdeconv.conv2d_transpose(x.copy(), w.copy(), None, 2, "SAME", backend=cpu_backend)
    assert a.tobytes() == b.tobytes()
