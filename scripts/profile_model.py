"""Per-layer time of a saved Keras model run by fastdeconv, without TensorFlow.

    python scripts/profile_model.py MODEL.keras|MODEL.h5 [--batch 1] [--repeat 7] [--backend cpu]
    python scripts/profile_model.py --unet [--size 64]    # the U-Net of scripts/bench_models.py
    python scripts/profile_model.py --vgg-decoder         # its VGG16 decoder (7x7x512 -> 224x224x3)

Loads the model with fastdeconv.load_keras, runs predict once (compilation
or Numba's cache), then `repeat` more times on one seeded random batch, and
prints each layer's median time (a conv layer's fused BatchNormalization
and activation are inside its time; a Concatenate whose inputs the convs
wrote in place does not run), the sum, and the median of whole predicts.
--unet and --vgg-decoder build and save that network with Keras first
(tests/keras/keras_models.py, seeded random weights; needs TensorFlow; the
file is cached in the system's temp directory).
"""

import argparse
import collections
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _built_path(name, *args):
    """A saved Keras model of tests/keras/keras_models.py, built once."""
    path = os.path.join(tempfile.gettempdir(), f"fastdeconv_profile_{name}{''.join(map(str, args))}.keras")
    if not os.path.exists(path):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        sys.path.insert(0, os.path.join(HERE, "..", "tests", "keras"))
        import keras_models

        keras_models.randomize(getattr(keras_models, name)(*args)).save(path)
    return path


def profile(model, x, repeat, backend):
    """{layer name: [seconds per call]} and the whole predicts' seconds."""
    times = collections.defaultdict(list)
    for layer in model.layers:
        call = layer.call

        def timed(*args, _call=call, _name=layer.name, **kwargs):
            t0 = time.perf_counter()
            y = _call(*args, **kwargs)
            times[_name].append(time.perf_counter() - t0)
            return y

        layer.call = timed
    model.predict(x, batch_size=len(x), backend=backend)
    times.clear()
    total = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        model.predict(x, batch_size=len(x), backend=backend)
        total.append(time.perf_counter() - t0)
    return times, total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?")
    parser.add_argument("--unet", action="store_true")
    parser.add_argument("--vgg-decoder", action="store_true")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--backend", default="cpu")
    args = parser.parse_args(argv)
    if bool(args.model) + args.unet + args.vgg_decoder != 1:
        parser.error("give a model file, --unet or --vgg-decoder")
    import fastdeconv

    path = (_built_path("unet3d", args.size) if args.unet else _built_path("vgg_decoder") if args.vgg_decoder
            else args.model)
    model = fastdeconv.load_keras(path)
    shape = [args.batch] + [int(n) for n in model.input_shape[1:]]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    times, total = profile(model, x, args.repeat, args.backend)
    print(f"# {os.path.basename(path)}, input {shape}, backend {args.backend}, median of {args.repeat}")
    print("| layer | type | ms |")
    print("|---|---|---:|")
    s = 0.0
    for layer in model.layers:
        if layer.name in times:
            ms = float(np.median(times[layer.name])) * 1e3
            s += ms
            print(f"| {layer.name} | {type(layer).__name__} | {ms:.2f} |")
    print(f"\nsum of layers {s:.1f} ms; whole predict median {np.median(total) * 1e3:.1f} ms, "
          f"min {min(total) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
