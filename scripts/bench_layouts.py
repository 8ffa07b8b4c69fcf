"""Channels-first against channels-last: the same convolutions on NDHWC /
NHWC input and on NCDHW / NCHW input, timed in one process.

    python scripts/bench_layouts.py [--repeat 15] [--only TEXT ...]

For every case both layouts are timed in alternation
(fastdeconv.bench.time_round_robin, --repeat samples each); the table
shows the medians and the ratio channels-first / channels-last (1.0: as
fast). Filters are read-only (packed once, as a layer's weights are).
The two layouts give the same bits (tests/test_cpu_paths.py); this only
times them.
"""

import argparse

import numpy as np

import fastdeconv as fd
from fastdeconv.bench import time_round_robin

# (name, op, channels-last input shape, filter shape, strides, channels-last output shape for transposes)
CASES = [
    ("conv3d 32^3 x 32 -> 32 k3", "conv3d", (1, 32, 32, 32, 32), (3, 3, 3, 32, 32), 1, None),
    ("conv3d 64^3 x 16 -> 16 k3", "conv3d", (1, 64, 64, 64, 16), (3, 3, 3, 16, 16), 1, None),
    ("conv3d 32^3 x 64 -> 64 k3", "conv3d", (1, 32, 32, 32, 64), (3, 3, 3, 64, 64), 1, None),
    ("conv3d_transpose 16^3 x 64 -> 32 k3 s2", "conv3d_transpose", (1, 16, 16, 16, 64), (3, 3, 3, 32, 64), 2,
     (1, 32, 32, 32, 32)),
    ("conv3d_transpose 32^3 x 64 -> 32 k2 s2", "conv3d_transpose", (1, 32, 32, 32, 64), (2, 2, 2, 32, 64), 2,
     (1, 64, 64, 64, 32)),
    ("conv3d_transpose 16x32x32 x 32, dilation 2", "conv3d_transpose", (1, 16, 32, 32, 32), (3, 3, 3, 32, 32), 1,
     (1, 16, 32, 32, 32)),
    ("conv3d_transpose 1 out channel (chain)", "conv3d_transpose", (2, 16, 56, 56, 8), (1, 3, 3, 1, 8), (1, 2, 2),
     (2, 16, 112, 112, 1)),
    ("conv2d 224^2 x 64 -> 64 k3", "conv2d", (1, 224, 224, 64), (3, 3, 64, 64), 1, None),
    ("conv2d 56^2 x 256 -> 256 k3", "conv2d", (1, 56, 56, 256), (3, 3, 256, 256), 1, None),
    ("conv2d 4 x 14^2 x 512 -> 512 k3", "conv2d", (4, 14, 14, 512), (3, 3, 512, 512), 1, None),
    ("conv2d 112^2 x 128 -> 128 k3 s2", "conv2d", (1, 112, 112, 128), (3, 3, 128, 128), 2, None),
    ("conv2d 8 x 7^2 x 512 -> 512 k3", "conv2d", (8, 7, 7, 512), (3, 3, 512, 512), 1, None),
    ("conv3d 8^3 x 128 -> 128 k3", "conv3d", (1, 8, 8, 8, 128), (3, 3, 3, 128, 128), 1, None),
    ("conv2d_transpose 28^2 x 256 -> 128 k3 s2", "conv2d_transpose", (1, 28, 28, 256), (3, 3, 128, 256), 2,
     (1, 56, 56, 128)),
]


def calls(case, rng):
    """(channels-last call, channels-first call) of one case."""
    _, op, xs, ws, strides, out = case
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    w.flags.writeable = False
    x_cf = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    f = getattr(fd, op)
    cf = "NCDHW" if x.ndim == 5 else "NCHW"
    if out is None:
        return (lambda: f(x, w, strides, "SAME", backend="cpu"),
                lambda: f(x_cf, w, strides, "SAME", data_format=cf, backend="cpu"))
    out_cf = (out[0], out[-1]) + tuple(out[1:-1])
    return (lambda: f(x, w, out, strides, "SAME", backend="cpu"),
            lambda: f(x_cf, w, out_cf, strides, "SAME", data_format=cf, backend="cpu"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--only", nargs="*", default=None, metavar="TEXT",
                    help="only the cases whose name contains one of these")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("| case | channels-last ms | channels-first ms | channels-first / channels-last |")
    print("|---|---:|---:|---:|")
    for case in CASES:
        if args.only and not any(t in case[0] for t in args.only):
            continue
        last, first = calls(case, rng)
        t = time_round_robin({"last": last, "first": first}, repeat=args.repeat)
        a, b = t["last"] * 1e3, t["first"] * 1e3
        print(f"| {case[0]} | {a:.2f} | {b:.2f} | {b / a:.2f} |", flush=True)


if __name__ == "__main__":
    main()
