"""The one place where Numba JIT options are spelled.

- parallel: outer tile loops use prange; every output element has one
  writer, so results do not depend on the thread count.
- cache: compiled kernels are stored on disk next to the sources, so a new
  process loads them instead of compiling (set NUMBA_CACHE_DIR to move it).
- fastmath: only 'contract' (fused multiply-add). Reassociation, nnan and
  ninf are off: they would change NaN/Inf propagation or make the
  summation order depend on the compiler's vector width choices.

Threads: Numba's OpenMP layer, told not to spin (OMP_WAIT_POLICY=PASSIVE,
unless the user set it). The convolutions run their tiles on a thread pool
of their own (cpu_rb.parallel_tiles); with the default policy the OpenMP
threads of a parallel kernel just before (pooling, upsampling, an
epilogue) spin for milliseconds on the same cores: the VGG decoder's first
convolution after each UpSampling2D took 24-26 ms instead of 19-21, its
predict 201 instead of 174 ms. libgomp reads the variable once, when
Numba first starts its threads, so it is set here, where the parallel
kernels are defined, before any of them can run (in a process that ran
Numba parallel code before importing fastdeconv, the caller's setting
stands).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402

FASTMATH = {"contract"}


def kernel(fn):
    """A parallel, cached, deterministic kernel."""
    return numba.njit(parallel=True, cache=True, fastmath=FASTMATH, nogil=True)(fn)


def helper(fn):
    """A small function inlined into kernels."""
    return numba.njit(inline="always", cache=True, fastmath=FASTMATH)(fn)


# CUDA (numba-cuda), imported only when the CUDA backend is used. No
# fastmath: NaN/Inf must propagate and the summation order is fixed by the
# kernels. The compiler may fuse a*b + c into one FMA (the CUDA default);
# that is the same on every run, so results stay bit-reproducible. No
# on-disk cache: the kernels are closures over their tile sizes.

def cuda_kernel(fn):
    """A CUDA kernel (launched as kernel[grid, block](...))."""
    from numba import cuda

    return cuda.jit(fastmath=False)(fn)


def cuda_device(fn):
    """A CUDA device function called from kernels."""
    from numba import cuda

    return cuda.jit(device=True, fastmath=False)(fn)
