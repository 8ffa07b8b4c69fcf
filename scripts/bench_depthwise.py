"""Depthwise 3x3 convolutions (Keras' DepthwiseConv2D): fastdeconv's layer
on cpu against tf.nn.depthwise_conv2d in the same process.

    python scripts/bench_depthwise.py [--repeat 9]

Float32, channels-last, SAME padding, no bias; alternating calls, medians;
"rel diff" is max|ours - tf| / max|tf|.
"""

import argparse
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

CASES = [  # (input shape, depth multiplier, stride)
    ((1, 112, 112, 32), 1, 1),
    ((1, 56, 56, 128), 1, 2),
    ((4, 28, 28, 256), 1, 1),
    ((1, 64, 64, 16), 2, 1),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args(argv)
    import tensorflow as tf

    from fastdeconv import layers as L

    rng = np.random.default_rng(0)
    print("| input | multiplier | stride | fastdeconv ms | TF ms | speed vs TF | rel diff |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for shape, mult, stride in CASES:
        x = rng.standard_normal(shape).astype(np.float32)
        k = (rng.standard_normal((3, 3, shape[-1], mult)) * 0.3).astype(np.float32)
        layer = L.DepthwiseConv2D(3, strides=stride, padding="same", depth_multiplier=mult, use_bias=False)
        layer.build((None,) + shape[1:])
        layer.set_weights([k])
        tx, tk = tf.constant(x), tf.constant(k)

        def theirs():
            return tf.nn.depthwise_conv2d(tx, tk, [1, stride, stride, 1], "SAME").numpy()

        def ours():
            return layer(x)

        got, expected = ours(), theirs()
        diff = float(np.abs(got - expected).max() / np.abs(expected).max())
        a, b = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            ours()
            a.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            theirs()
            b.append(time.perf_counter() - t0)
        t_ours, t_tf = float(np.median(a)), float(np.median(b))
        print(f"| {'x'.join(map(str, shape))} | {mult} | {stride} | {t_ours * 1e3:.2f} | {t_tf * 1e3:.2f} | "
              f"{t_tf / t_ours:.2f} | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
