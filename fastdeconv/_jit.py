"""The one place where Numba JIT options are spelled.

- parallel: outer tile loops use prange; every output element has one
  writer, so results do not depend on the thread count.
- cache: compiled kernels are stored on disk next to the sources, so a new
  process loads them instead of compiling (set NUMBA_CACHE_DIR to move it).
- fastmath: only 'contract' (fused multiply-add). Reassociation, nnan and
  ninf are off: they would change NaN/Inf propagation or make the
  summation order depend on the compiler's vector width choices.
"""

import numba

FASTMATH = {"contract"}


def kernel(fn):
    """A parallel, cached, deterministic kernel."""
    return numba.njit(parallel=True, cache=True, fastmath=FASTMATH, nogil=True)(fn)


def helper(fn):
    """A small function inlined into kernels."""
    return numba.njit(inline="always", cache=True, fastmath=FASTMATH)(fn)
