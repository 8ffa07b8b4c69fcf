"""Numba's OpenMP threads are told not to spin (OMP_WAIT_POLICY=PASSIVE, set
in fastdeconv._jit on import); a policy the caller set stands. (With the
spinning default, the threads of a parallel Numba kernel slowed the
convolution after it by ~25 %: benchmarks/NOTES.md section 48. fastdeconv's
own kernels run on its thread pool since section 57; a caller's parallel
Numba code still starts OpenMP threads.)"""

import os
import subprocess
import sys

import pytest

CHILD = """
import os
import numpy as np
from fastdeconv.backends import cpu_layers
cpu_layers.upsample(np.zeros((1, 2, 2, 2, 3), np.float32), (2, 2, 2), False)  # a layer kernel first
print(os.environ.get("OMP_WAIT_POLICY"))
"""


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_wait_policy(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == expected
