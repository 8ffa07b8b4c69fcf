"""Single layers whose speed is not in the conv suite: depthwise 3x3
convolutions (Keras' DepthwiseConv2D, against tf.nn.depthwise_conv2d),
Layer / Group normalization and the activations (against the Keras layer,
the activations in a tf.function), fastdeconv's layer on cpu against
TensorFlow in the same process.

    python scripts/bench_layers.py [--repeat 9] [--only depthwise|normalization|activations]

Float32, channels-last; depthwise: SAME padding, no bias; alternating
calls, medians; "rel diff" is max|ours - tf| / max|tf|.
"""

import argparse

import numpy as np

# its environment defaults (TF's logging, oneDNN on) and its alternating timer
from bench_vs_tf import _median_pair

DEPTHWISE = [  # (input shape, depth multiplier, stride)
    ((1, 112, 112, 32), 1, 1),
    ((1, 56, 56, 128), 1, 2),
    ((4, 28, 28, 256), 1, 1),
    ((1, 64, 64, 16), 2, 1),
    # channel counts that are not whole vectors (MobileNetV3), a last stage
    ((1, 112, 112, 24), 1, 1),
    ((1, 56, 56, 72), 1, 1),
    ((1, 7, 7, 960), 1, 1),
]
NORMALIZATION = [  # (layer class, arguments, input shape)
    ("GroupNormalization", dict(groups=8), (1, 32, 32, 32, 32)),
    ("GroupNormalization", dict(groups=32), (2, 64, 64, 128)),
    ("LayerNormalization", dict(), (4, 56, 56, 96)),
    ("LayerNormalization", dict(axis=[1, 2, 3]), (2, 32, 32, 64)),
]
ACTIVATION_SHAPE = (1, 64, 64, 64, 16)  # a 3-D U-Net's first level


def _row(label, ours, theirs, repeat):
    got, expected = ours(), theirs()
    diff = float(np.abs(got - expected).max() / np.abs(expected).max())
    t_ours, t_tf = _median_pair(ours, theirs, repeat)
    print(f"| {label} | {t_ours * 1e3:.2f} | {t_tf * 1e3:.2f} | {t_tf / t_ours:.2f} | {diff:.1e} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--only", choices=["depthwise", "normalization", "activations"])
    args = parser.parse_args(argv)
    import keras
    import tensorflow as tf

    from fastdeconv import layers as L

    rng = np.random.default_rng(0)
    if args.only in (None, "depthwise"):
        print("| depthwise input, multiplier, stride | fastdeconv ms | TF ms | speed vs TF | rel diff |")
        print("|---|---:|---:|---:|---:|")
        for shape, mult, stride in DEPTHWISE:
            x = rng.standard_normal(shape).astype(np.float32)
            k = (rng.standard_normal((3, 3, shape[-1], mult)) * 0.3).astype(np.float32)
            layer = L.DepthwiseConv2D(3, strides=stride, padding="same", depth_multiplier=mult, use_bias=False)
            layer.build((None,) + shape[1:])
            layer.set_weights([k])
            tx, tk = tf.constant(x), tf.constant(k)
            _row(f"{'x'.join(map(str, shape))}, {mult}, {stride}", lambda: layer(x),
                 lambda: tf.nn.depthwise_conv2d(tx, tk, [1, stride, stride, 1], "SAME").numpy(), args.repeat)
        print()
    if args.only in (None, "normalization"):
        print("| layer, input | fastdeconv ms | Keras ms | speed vs Keras | rel diff |")
        print("|---|---:|---:|---:|---:|")
        for cls, kwargs, shape in NORMALIZATION:
            x = rng.standard_normal(shape).astype(np.float32)
            theirs = getattr(keras.layers, cls)(**kwargs)
            theirs.build(shape)
            theirs.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in theirs.get_weights()])
            ours = getattr(L, cls)(**kwargs)
            ours.build((None,) + shape[1:])
            ours.set_weights(theirs.get_weights())
            tx = tf.constant(x)
            _row(f"{cls}({', '.join(f'{k}={v}' for k, v in kwargs.items())}), {'x'.join(map(str, shape))}",
                 lambda: ours(x), lambda: np.asarray(theirs(tx)), args.repeat)
        print()
    if args.only in (None, "activations"):
        print(f"| activation, {'x'.join(map(str, ACTIVATION_SHAPE))} | fastdeconv ms | Keras ms | speed vs Keras "
              "| rel diff |")
        print("|---|---:|---:|---:|---:|")
        x = (rng.standard_normal(ACTIVATION_SHAPE) * 3).astype(np.float32)
        tx = tf.constant(x)
        for name in L.ACTIVATIONS:
            if name in ("linear", "swish", "hard_swish"):  # nothing, and aliases
                continue
            ours, theirs = L.Activation(name), keras.layers.Activation(name)
            keras_call = tf.function(lambda v, layer=theirs: layer(v))
            _row(name, lambda: ours(x), lambda: keras_call(tx).numpy(), args.repeat)


if __name__ == "__main__":
    main()
