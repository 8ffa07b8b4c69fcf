"""Host time of one backend='cuda' call on device arrays, and where it goes.

    python scripts/gpu_call_overhead.py [N]     # on a GPU machine; N calls per timing (default 500)

Times N calls of a tiny conv2d on Numba device arrays (the GPU work is a few
microseconds, so this is the host's time per call), then a bare Numba launch
of the same compiled kernel and one cuda.device_array, then prints the
functions that take the host's time (cProfile, by own time).
"""
import cProfile
import pstats
import sys
import time

import numpy as np
from numba import cuda

import fastdeconv
from fastdeconv.backends import cuda as cuda_backend
from fastdeconv.backends.cuda import kernels

N = int(sys.argv[1]) if len(sys.argv) > 1 else 500

x = cuda.to_device(np.random.default_rng(0).standard_normal((1, 8, 8, 4)).astype(np.float32))
w = cuda.to_device(np.random.default_rng(1).standard_normal((3, 3, 4, 4)).astype(np.float32))


def call():
    return fastdeconv.conv2d(x, w, 1, "SAME")


for _ in range(2):
    call()
cuda.synchronize()
for _ in range(3):
    t0 = time.perf_counter()
    for _ in range(N):
        call()
    cuda.synchronize()
    print(f"conv2d tiny on device: {(time.perf_counter() - t0) / N * 1e6:.1f} us per call")
# a bare launch of the kernel that call() uses, with the same arguments
tm, tn, rm, rn, bk = cuda_backend.launch_shape(4, 4, 64, 1)
k = kernels.conv_kernel(False, tm, tn, rm, rn, bk, "float32")
out = cuda.device_array(256, np.float32)
p = (1, 8, 8, 1, 8, 8, 1, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 4, 4, 1, 0, -(-64 // (tm * rm)), -(-4 // (tn * rn)))
xf, wf = x.reshape(x.size), w.reshape(w.size)
for _ in range(2):
    k[1, tm * tn](xf, wf, out, p)
cuda.synchronize()
t0 = time.perf_counter()
for _ in range(N):
    k[1, tm * tn](xf, wf, out, p)
cuda.synchronize()
print(f"bare launch: {(time.perf_counter() - t0) / N * 1e6:.1f} us")
t0 = time.perf_counter()
for _ in range(N):
    cuda.device_array(256, np.float32)
print(f"device_array: {(time.perf_counter() - t0) / N * 1e6:.1f} us")
pr = cProfile.Profile()
pr.enable()
for _ in range(N):
    call()
cuda.synchronize()
pr.disable()
pstats.Stats(pr).sort_stats("tottime").print_stats(22)
