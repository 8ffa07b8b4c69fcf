"""A short tour: the source examples, their shapes, timings and agreement.

    python -m fastdeconv.demo [--backend cpu|reference] [--repeat N]

Each example is a call copied from TensorFlow code with `tf.nn.` replaced by
`fastdeconv.`. When TensorFlow is installed the same call runs through
`tf.nn` too and the relative difference max|ours - tf| / max|tf| is shown.
"""

import argparse
import os
import time

import numpy as np

import fastdeconv as fd
from fastdeconv._shapes import same_pads


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow turns its oneDNN kernels on by default only on CPUs with
    # AVX-512 VNNI/BF16 or AMX; elsewhere its float32 convolutions are
    # several times slower and refuse channels-first and dilated transposes.
    # Compare with (and test against) TF at its best on every CPU.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    try:
        import tensorflow as tf
    except ImportError:
        return None
    return tf


def _max_pool(x, window, strides):
    """SAME max-pool over the spatial dims of a channels-last array (as
    tf.nn.max_pool3d(..., "SAME"): out = ceil(n / s), padding never wins)."""
    pads = [same_pads(n, k, s, 1) for n, k, s in zip(x.shape[1:-1], window, strides)]
    x = np.pad(x, [(0, 0)] + pads + [(0, 0)], constant_values=-np.inf)
    out_sizes = [(n - k) // s + 1 for n, k, s in zip(x.shape[1:-1], window, strides)]
    out = np.full((x.shape[0], *out_sizes, x.shape[-1]), -np.inf, dtype=x.dtype)
    for tap in np.ndindex(*window):
        view = x[(slice(None),) + tuple(slice(t, t + (o - 1) * s + 1, s)
                                        for t, o, s in zip(tap, out_sizes, strides))]
        np.maximum(out, view, out=out)
    return out


def _examples(rng):
    """(title, fastdeconv function name, args, kwargs) for each source example."""
    def arr(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    chain_w = [arr(3, 3, 3, 16, 32, scale=0.06), arr(3, 3, 3, 8, 16, scale=0.09), arr(1, 3, 3, 1, 8, scale=0.3)]
    x64 = arr(1, 64, 64, 3)
    w64 = arr(3, 3, 256, 3, scale=0.2)
    yield ("conv3d_transpose [2,2,7,7,64] -> [2,4,14,14,32], k3 s2 SAME", "conv3d_transpose",
           (arr(2, 2, 7, 7, 64), arr(3, 3, 3, 32, 64, scale=0.05), [2, 4, 14, 14, 32], 2, "SAME"), {})
    yield ("  chain -> [2,8,28,28,16]", "conv3d_transpose",
           (arr(2, 4, 14, 14, 32), chain_w[0], [2, 8, 28, 28, 16], 2, "SAME"), {})
    yield ("  chain -> [2,16,56,56,8]", "conv3d_transpose",
           (arr(2, 8, 28, 28, 16), chain_w[1], [2, 16, 56, 56, 8], 2, "SAME"), {})
    yield ("  chain -> [2,16,112,112,1], strides (1,2,2)", "conv3d_transpose",
           (arr(2, 16, 56, 56, 8), chain_w[2], [2, 16, 112, 112, 1], [1, 2, 2], "SAME"), {})
    for size in (5, 6):
        yield (f"conv2d_transpose [1,3,3,1] -> [1,{size},{size},3], k2 s2 SAME", "conv2d_transpose",
               (arr(1, 3, 3, 1), arr(2, 2, 3, 1), [1, size, size, 3], 2, "SAME"), {})
    for size, stride, pad in ((64, 1, "SAME"), (66, 1, "VALID"), (127, 2, "SAME"), (128, 2, "SAME"),
                              (129, 2, "VALID"), (130, 2, "VALID")):
        yield (f"conv2d_transpose [1,64,64,3] -> [1,{size},{size},256], k3 s{stride} {pad}", "conv2d_transpose",
               (x64, w64, [1, size, size, 256], stride, pad), {})
    video = arr(1, 7, 224, 224, 3)
    for kd in (1, 5):
        for sd in (1, 2):
            yield (f"conv3d [1,7,224,224,3] * [{kd},3,3,3,64], depth stride {sd}, SAME", "conv3d",
                   (video, arr(kd, 3, 3, 3, 64, scale=0.1), [1, sd, 1, 1, 1], "SAME"), {})


def _time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))


def _agreement(ours, theirs):
    theirs = np.asarray(theirs, dtype=np.float64)
    scale = np.max(np.abs(theirs)) or 1.0
    return float(np.max(np.abs(ours.astype(np.float64) - theirs)) / scale)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="cpu", choices=["cpu", "reference"])
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per example (median shown)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    tf = _tf()
    print(f"fastdeconv {fd.__version__}, backend={args.backend}; TensorFlow: "
          f"{tf.__version__ if tf else 'not installed (pip install fastdeconv[test] to compare)'}")
    header = f"{'example':62} {'shape':>22} {'first ms':>9} {'ms':>8}" + (f" {'tf ms':>8} {'rel diff':>9}" if tf else "")
    print(header)
    print("-" * len(header))
    for title, name, call_args, kwargs in _examples(rng):
        fn = getattr(fd, name)
        t0 = time.perf_counter()
        out = fn(*call_args, backend=args.backend, **kwargs)
        first = time.perf_counter() - t0
        out, ms = _time(lambda: fn(*call_args, backend=args.backend, **kwargs), args.repeat)
        line = f"{title:62} {str(list(out.shape)):>22} {first * 1e3:9.1f} {ms * 1e3:8.2f}"
        if tf:
            tf_fn = getattr(tf.nn, name)
            expected, tf_ms = _time(lambda: tf_fn(*call_args, **kwargs).numpy(), args.repeat)
            line += f" {tf_ms * 1e3:8.2f} {_agreement(out, expected):9.1e}"
        print(line)

    print("\nAn output_shape no forward convolution maps back to the input is refused, with the valid sizes:")
    try:
        fd.conv2d_transpose(np.zeros((1, 64, 64, 3), np.float32), np.zeros((3, 3, 256, 3), np.float32),
                            [1, 129, 129, 256], 2, "SAME", backend=args.backend)
    except fd.ShapeError as err:
        print(f"  ShapeError: {err}")
    print("Ask first instead:", fd.conv_transpose_output_shapes([1, 64, 64, 3], [3, 3, 256, 3], 2, "SAME"))

    print("\nconv3d -> max-pool -> conv3d_transpose, [10,2,7,7,512] and back:")
    x = rng.standard_normal((10, 2, 7, 7, 512)).astype(np.float32)
    w_down = (rng.standard_normal((3, 3, 3, 512, 512)) * 0.015).astype(np.float32)
    w_up = (rng.standard_normal((3, 3, 3, 512, 512)) * 0.015).astype(np.float32)
    t0 = time.perf_counter()
    y = fd.conv3d(x, w_down, [1, 1, 1, 1, 1], "SAME", backend=args.backend)
    pooled = _max_pool(y, (1, 2, 2), (1, 2, 2))
    back = fd.conv3d_transpose(pooled, w_up, [10, 2, 7, 7, 512], [1, 1, 2, 2, 1], "SAME", backend=args.backend)
    ms = (time.perf_counter() - t0) * 1e3
    line = f"  {list(x.shape)} -> {list(y.shape)} -> {list(pooled.shape)} -> {list(back.shape)} in {ms:.0f} ms"
    if tf:
        ty = tf.nn.conv3d(x, w_down, [1, 1, 1, 1, 1], "SAME")
        tp = tf.nn.max_pool3d(ty, [1, 1, 2, 2, 1], [1, 1, 2, 2, 1], "SAME")
        tb = tf.nn.conv3d_transpose(tp, w_up, [10, 2, 7, 7, 512], [1, 1, 2, 2, 1], "SAME").numpy()
        line += f"; rel diff to TensorFlow {_agreement(back, tb):.1e}"
    print(line)


if __name__ == "__main__":
    main()
