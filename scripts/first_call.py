"""First-call latency of each CPU kernel: JIT compile (empty Numba cache)
and load from Numba's on-disk cache, each in a fresh process.

    python scripts/first_call.py [--repeat 3] [--only TEXT ...]

Per kernel path it prints the median over --repeat fresh processes of:
- import: `import numba` (paid once per process, before any kernel),
- cold: the first call with an empty NUMBA_CACHE_DIR, wall and process CPU
  time (compilation is single-threaded; CPU time is less disturbed by other
  load on a shared machine than wall time),
- cached: the first call in a new process that finds the kernel in the
  cache written by the cold run.
fastdeconv's own modules are byte-compiled once before the timed
processes (`compileall`), as an installed package's are: where
PYTHONDONTWRITEBYTECODE is set, Python reads bytecode files but does not
write them, and the kernel modules that the first call imports were
compiled from source in every process (~0.1 s of each cold and cached
call; benchmarks/NOTES.md section 136).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import fastdeconv
from fastdeconv.backends import cpu_simd

# (name, code that makes the first call; x/w built before timing)
# One vector of float32 output channels: 16 with AVX-512, 8 with AVX2.
V = cpu_simd.VBYTES // 4

PATHS = {
    # (32 input channels: 864 terms per output, past cpu.SHORT_MAX_TERMS)
    "cl, 2 vectors (channels-last, > 1 vector of out channels)":
        "x = r(1, 8, 8, 8, 32); w = r(3, 3, 3, 32, 64)\nCALL fd.conv3d(x, w, 1, 'SAME', backend='cpu')",
    "short (channels-last forward, short reductions: a video network's first layer)":
        "x = r(1, 4, 16, 16, 3); w = r(1, 3, 3, 3, 64)\nCALL fd.conv3d(x, w, 1, 'SAME', backend='cpu')",
    "short cf (channels-first forward, short reductions: the same layer)":
        "x = r(1, 3, 4, 16, 32); w = r(1, 3, 3, 3, 64)\n"
        "CALL fd.conv3d(x, w, 1, 'SAME', data_format='NCDHW', backend='cpu')",
    "cl, 1 vector (channels-last, 1 vector of out channels)":
        f"x = r(1, 8, 8, 8, 32); w = r(3, 3, 3, 32, {V})\nCALL fd.conv3d(x, w, 1, 'SAME', backend='cpu')",
    "cl, 2 vectors, writable 3x3x512x512 transposed filters (packed per block)":
        "x = r(1, 4, 4, 512); w = r(3, 3, 512, 512)\nCALL fd.conv2d_transpose(x, w, None, 1, 'SAME', backend='cpu')",
    "cl, 2 vectors, writable 3x3x512x512 filters (packed by a Numba loop)":
        "x = r(1, 4, 4, 512); w = r(3, 3, 512, 512)\nCALL fd.conv2d(x, w, 1, 'SAME', backend='cpu')",
    "cl, gathered taps (few-input-channel strided transpose, channel blocks innermost)":
        "x = r(1, 8, 8, 3); w = r(3, 3, 256, 3)\nCALL fd.conv2d_transpose(x, w, None, 2, 'SAME', backend='cpu')",
    "cf gathered runs (channels-first few-input-channel strided transpose)":
        "x = r(1, 3, 8, 8); w = r(3, 3, 256, 3)\n"
        "CALL fd.conv2d_transpose(x, w, None, 2, 'SAME', data_format='NCHW', backend='cpu')",
    "wv (channels-first, or <= half a vector of out channels)":
        "x = r(1, 8, 8, 8, 16); w = r(3, 3, 3, 16, 4)\nCALL fd.conv3d(x, w, 1, 'SAME', backend='cpu')",
    # (rows of 16 columns: rows of 8 take the bands, cpu.CF_BANDS_*)
    "wv, packed rows (channels-first, 64 output rows)":
        "x = r(1, 16, 8, 8, 16); w = r(3, 3, 3, 16, 16)\n"
        "CALL fd.conv3d(x, w, 1, 'SAME', data_format='NCDHW', backend='cpu')",
    "wv, packed rows, 2 vectors along W (channels-first, 56 columns)":
        "x = r(1, 16, 4, 8, 56); w = r(3, 3, 3, 16, 16)\n"
        "CALL fd.conv3d(x, w, 1, 'SAME', data_format='NCDHW', backend='cpu')",
    "wv, channels-last rows packed (3 out channels, long reductions)":
        "x = r(1, 8, 8, 8, 16); w = r(3, 3, 3, 16, 3)\nCALL fd.conv3d(x, w, 1, 'SAME', backend='cpu')",
    "cf bands (channels-first, rows of 7, 64 channels)":
        "x = r(1, 64, 7, 7); w = r(3, 3, 64, 64)\n"
        "CALL fd.conv2d(x, w, 1, 'SAME', data_format='NCHW', backend='cpu')",
    "wv, one out channel (1-row tile)":
        "x = r(1, 16, 8, 8, 8); w = r(3, 3, 3, 16, 1)\n"
        "CALL fd.conv3d(x, w, 1, 'SAME', data_format='NCDHW', backend='cpu')",
    "pointwise (1x1 stride 1, few channels: segmentation heads)":
        "x = r(1, 8, 8, 8, 16); w = r(1, 1, 1, 16, 2)\nCALL fd.conv3d(x, w, 1, 'SAME', backend='cpu')",
    "pointwise, channels-first (1x1 stride 1, few output channels)":
        "x = r(1, 16, 8, 8, 8); w = r(1, 1, 1, 16, 2)\nCALL fd.conv3d(x, w, 1, 'SAME', data_format='NCDHW', backend='cpu')",
    "patch (stride == kernel transpose, channels-last)":
        "x = r(1, 8, 8, 8, 64); w = r(2, 2, 2, 32, 64)\nCALL fd.conv3d_transpose(x, w, None, 2, 'SAME', backend='cpu')",
    "patch (stride == kernel transpose, channels-first)":
        "x = r(1, 64, 8, 8, 8); w = r(2, 2, 2, 32, 64)\n"
        "CALL fd.conv3d_transpose(x, w, None, 2, 'SAME', data_format='NCDHW', backend='cpu')",
    "wv, strided forward (channels-first, W stride 2)":
        "x = r(1, 16, 8, 8, 32); w = r(3, 3, 3, 16, 16)\n"
        "CALL fd.conv3d(x, w, 2, 'SAME', data_format='NCDHW', backend='cpu')",
    "depthwise (channels-last, rows of 16: a pixel's channels at a time)":
        "x = r(1, 16, 16, 32); w = r(3, 3, 1, 32)\n"
        "CALL fd.conv2d(x, w, 1, 'SAME', backend='cpu')",
    "depthwise (channels-last, rows of 24: vectors of channels on padded planes)":
        "x = r(1, 24, 24, 32); w = r(3, 3, 1, 32)\n"
        "CALL fd.conv2d(x, w, 1, 'SAME', backend='cpu')",
    "depthwise (channels-last, stride 2, rows of 24: vectors of channels along the rows)":
        "x = r(1, 48, 48, 32); w = r(3, 3, 1, 32)\n"
        "CALL fd.conv2d(x, w, 2, 'SAME', backend='cpu')",
    "depthwise (channels-first, a plane at a time)":
        "x = r(1, 20, 16, 16); w = r(3, 3, 1, 20)\n"
        "CALL fd.conv2d(x, w, 1, 'SAME', data_format='NCHW', backend='cpu')",
    "depthwise (channels-first, whole vectors of channels: blocks of channels)":
        "x = r(1, 32, 7, 7); w = r(3, 3, 1, 32)\n"
        "CALL fd.conv2d(x, w, 1, 'SAME', data_format='NCHW', backend='cpu')",
    "cf bands, one-vector tile (channels-first, 16 output channels)":
        "x = r(1, 32, 20, 20); w = r(3, 3, 32, 16)\n"
        "CALL fd.conv2d(x, w, 1, 'SAME', data_format='NCHW', backend='cpu')",
    # layers: one kernel each
    "layer: MaxPooling3D (channels-last)":
        "from fastdeconv import layers\nx = r(1, 8, 8, 8, 16); layer = layers.MaxPooling3D(2)\nCALL layer(x)",
    "layer: GroupNormalization (channels-last)":
        "from fastdeconv import layers\nx = r(1, 8, 8, 8, 16); layer = layers.GroupNormalization(groups=4)\n"
        "CALL layer(x)",
    "layer: UpSampling3D (channels-last)":
        "from fastdeconv import layers\nx = r(1, 8, 8, 8, 16); layer = layers.UpSampling3D(2)\nCALL layer(x)",
}

# The kernel each path runs (tests/test_cpu_paths.py checks it, so that a
# routing change cannot leave a path timing another kernel than its name)
KERNELS = {
    "cl, 2 vectors (channels-last, > 1 vector of out channels)": "cl_kernel",
    "short (channels-last forward, short reductions: a video network's first layer)": "short_cl",
    "short cf (channels-first forward, short reductions: the same layer)": "short_cf",
    "cl, 1 vector (channels-last, 1 vector of out channels)": "cl_kernel",
    "cl, 2 vectors, writable 3x3x512x512 transposed filters (packed per block)": "cl_kernel",
    "cl, 2 vectors, writable 3x3x512x512 filters (packed by a Numba loop)": "cl_kernel",
    "cl, gathered taps (few-input-channel strided transpose, channel blocks innermost)": "cl_kernel",
    "cf gathered runs (channels-first few-input-channel strided transpose)": "cfgather_kernel",
    "wv (channels-first, or <= half a vector of out channels)": "wv_kernel",
    "wv, packed rows (channels-first, 64 output rows)": "wv_kernel",
    "wv, packed rows, 2 vectors along W (channels-first, 56 columns)": "wv_kernel",
    "wv, channels-last rows packed (3 out channels, long reductions)": "wv_kernel",
    "cf bands (channels-first, rows of 7, 64 channels)": "cfband_kernel",
    "wv, one out channel (1-row tile)": "wv_kernel",
    "pointwise (1x1 stride 1, few channels: segmentation heads)": "pointwise_cl",
    "pointwise, channels-first (1x1 stride 1, few output channels)": "pointwise_cf",
    "patch (stride == kernel transpose, channels-last)": "patch_cl",
    "patch (stride == kernel transpose, channels-first)": "patch_cf",
    "wv, strided forward (channels-first, W stride 2)": "wv_kernel",
    "depthwise (channels-last, rows of 16: a pixel's channels at a time)": "depthwise_cl_blocks",
    "depthwise (channels-last, rows of 24: vectors of channels on padded planes)": "depthwise_cl_blocks",
    "depthwise (channels-last, stride 2, rows of 24: vectors of channels along the rows)": "depthwise_cl_vectors",
    "depthwise (channels-first, a plane at a time)": "depthwise_cf",
    "depthwise (channels-first, whole vectors of channels: blocks of channels)": "depthwise_cf_blocks",
    "cf bands, one-vector tile (channels-first, 16 output channels)": "cfband_kernel",
    "layer: MaxPooling3D (channels-last)": "_pool_cl",
    "layer: GroupNormalization (channels-last)": "_normalize_cl_apply",
    "layer: UpSampling3D (channels-last)": "_upsample_cl",
}

CHILD = """
import time
t0 = time.perf_counter()
import numba
t1 = time.perf_counter()
import numpy as np
import fastdeconv as fd
rng = np.random.default_rng(0)
def r(*s):
    return rng.standard_normal(s).astype(np.float32)
{setup}
w0, c0 = time.perf_counter(), time.process_time()
{call}
w1, c1 = time.perf_counter(), time.process_time()
import json
print(json.dumps(dict(imp=t1 - t0, wall=w1 - w0, cpu=c1 - c0)))
"""


def run_child(code, cache_dir):
    setup, call = code.split("CALL ")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", CHILD.format(setup=setup, call=call)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=None, metavar="TEXT",
                    help="only the kernel paths whose name contains one of these")
    args = ap.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.dirname(fastdeconv.__file__)], check=True)
    print(f"{cpu_simd.VBYTES}-byte vectors ({'AVX-512' if cpu_simd.VBYTES == 64 else 'AVX2'} tiles), "
          f"median of {args.repeat} fresh processes\n")
    print("| kernel path | numba import s | cold wall s | cold CPU s | cached wall s |")
    print("|---|---:|---:|---:|---:|")
    for name, code in PATHS.items():
        if args.only and not any(t in name for t in args.only):
            continue
        cold, cached = [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as d:
                cold.append(run_child(code, d))
                cached.append(run_child(code, d))
        med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
        print(f"| {name} | {med(cold, 'imp'):.2f} | {med(cold, 'wall'):.2f} | "
              f"{med(cold, 'cpu'):.2f} | {med(cached, 'wall'):.3f} |", flush=True)


if __name__ == "__main__":
    main()
