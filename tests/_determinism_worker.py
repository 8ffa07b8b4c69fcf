"""Run by test_determinism.py in a fresh interpreter whose environment sets
NUMBA_NUM_THREADS before numba is imported. Prints one JSON object: the
thread count numba reports, and the sha256 of every case's result bytes."""

import hashlib
import json
import sys

import numba
import numpy as np

import fastdeconv

# (name, op, x shape, w shape, kwargs); inputs come from a seeded generator.
CASES = [
    ("conv2d-k4-odd-same-cl", "conv2d", (3, 33, 35, 19), (4, 4, 19, 70), dict(strides=1, padding="SAME")),
    ("conv2d-s2-odd-same-cf", "conv2d", (3, 19, 34, 36), (3, 3, 19, 40),
     dict(strides=2, padding="SAME", data_format="NCHW")),
    ("conv2d-d2-s2-cl", "conv2d", (2, 40, 37, 9), (3, 3, 9, 33), dict(strides=2, padding="VALID", dilations=2)),
    ("conv1d-grouped-cf", "conv1d", (4, 12, 301), (5, 4, 24),
     dict(stride=2, padding=[(2, 1)], data_format="NCW")),
    ("conv3d-cl", "conv3d", (2, 9, 14, 15, 8), (3, 3, 3, 8, 20), dict(strides=[1, 2, 2], padding="SAME")),
    ("conv3d-d2-cf", "conv3d", (1, 8, 10, 12, 11), (2, 3, 3, 8, 6),
     dict(strides=1, padding="SAME", dilations=[1, 2, 2], data_format="NCDHW")),
    ("conv2d_T-s2-odd-cl", "conv2d_transpose", (3, 16, 17, 24), (3, 3, 70, 24),
     dict(output_shape=[3, 31, 34, 70], strides=2, padding="SAME")),
    ("conv2d_T-s2-d2-cf", "conv2d_transpose", (2, 12, 15, 13), (3, 3, 10, 12),
     dict(output_shape=[2, 10, 33, 29], strides=2, padding="VALID", dilations=2, data_format="NCHW")),
    ("conv1d_T-s3-cl", "conv1d_transpose", (5, 97, 16), (4, 33, 16),
     dict(output_shape=[5, 290, 33], strides=3, padding="SAME")),
    ("conv3d_T-cl", "conv3d_transpose", (2, 5, 8, 9, 16), (3, 3, 3, 12, 16),
     dict(output_shape=None, strides=[1, 2, 2], padding="SAME")),
    ("conv3d_T-explicit-cf", "conv3d_transpose", (1, 4, 5, 7, 6), (2, 3, 3, 5, 4),
     dict(output_shape=None, strides=[2, 1, 2], padding=[(1, 0), (0, 2), (1, 1)], data_format="NCDHW")),
]


def main():
    backend = sys.argv[1]
    out = {"threads": numba.get_num_threads(), "hashes": {}}
    for i, (name, op, xs, ws, kwargs) in enumerate(CASES):
        rng = np.random.default_rng(1234 + i)
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal(xs).astype(dtype)
            w = rng.standard_normal(ws).astype(dtype)
            y = getattr(fastdeconv, op)(x, w, **kwargs, backend=backend)
            out["hashes"][f"{name}-{np.dtype(dtype).name}"] = [hashlib.sha256(y.tobytes()).hexdigest(),
                                                               list(y.shape)]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
