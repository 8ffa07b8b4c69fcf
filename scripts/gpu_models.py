"""Whole saved Keras models on backend='cuda', checked against Keras' own outputs.

    python scripts/gpu_models.py --make DIR     # here, with TensorFlow: save the models and Keras' outputs
    python scripts/gpu_models.py DIR            # on a GPU machine (no TensorFlow needed)
    python scripts/gpu_models.py DIR --backends cuda cpu --repeat 10

--make saves, for each model of `MODELS` (seeded random weights, the
builders of tests/keras/keras_models.py), NAME.keras and NAME.npz holding
an input batch `x` and Keras' output `y` on it (model(x, training=False)).

Without --make, each NAME.keras in DIR is loaded with fastdeconv.load_keras
(no TensorFlow import) and run on each backend: the first predict
(compilation included), then the median of `repeat` predicts and each
layer's median time (scripts/profile_model.py's timing). The output is
compared with Keras': err = max|ours - keras| / max|keras|, which the
SPEC's float32 bar puts at 1e-4 or below for these models.
"""

import argparse
import glob
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# name: (builder, its arguments, batch)
MODELS = {
    "unet3d_64": ("unet3d", (64,), 1),
    "c3t_chain": ("c3t_chain", (), 2),
    "vgg_decoder_div2": ("vgg_decoder", (2,), 2),
}


def make(directory, only=None):
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "keras"))
    import keras_models as KM

    os.makedirs(directory, exist_ok=True)
    for name, (builder, bargs, batch) in MODELS.items():
        if only and name not in only:
            continue
        model = KM.randomize(getattr(KM, builder)(*bargs))
        x = np.random.default_rng(1).standard_normal((batch,) + tuple(model.input_shape[1:])).astype(np.float32)
        y = np.asarray(model(x, training=False))
        model.save(os.path.join(directory, f"{name}.keras"))
        np.savez(os.path.join(directory, f"{name}.npz"), x=x, y=y)
        print(f"saved {name}: input {x.shape}, output {y.shape}")


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def check(directory, backends, repeat, layers_shown, only=None):
    import fastdeconv

    sys.path.insert(0, HERE)
    from profile_model import profile

    print(f"fastdeconv {fastdeconv.__version__}; median of {repeat} predicts after a first one")
    status = 0
    for path in sorted(glob.glob(os.path.join(directory, "*.keras"))):
        name = os.path.basename(path)[:-len(".keras")]
        if only and name not in only:
            continue
        data = np.load(os.path.join(directory, f"{name}.npz"))
        x, y = data["x"], data["y"]
        print(f"\n## {name}: input {x.shape} -> {y.shape}\n")
        print("| backend | first predict s | predict ms | err vs Keras |")
        print("|---|---:|---:|---:|")
        per_layer = {}
        for backend in backends:
            model = fastdeconv.load_keras(path)
            t0 = time.perf_counter()
            got = model.predict(x, batch_size=len(x), backend=backend)
            first = time.perf_counter() - t0
            err = rel_err(got, y)
            times, total = profile(model, x, repeat, backend)
            per_layer[backend] = {k: float(np.median(v)) for k, v in times.items()}
            ok = err <= 1e-4
            status |= not ok
            print(f"| {backend} | {first:.2f} | {np.median(total) * 1e3:.2f} | {err:.1e}{'' if ok else ' FAIL'} |",
                  flush=True)
        if layers_shown:
            names = sorted(per_layer[backends[0]], key=lambda k: -per_layer[backends[0]][k])[:layers_shown]
            print("\n| layer | " + " | ".join(f"{b} ms" for b in backends) + " |")
            print("|---|" + "---:|" * len(backends))
            for layer in names:
                print(f"| {layer} | " + " | ".join(f"{per_layer[b].get(layer, float('nan')) * 1e3:.2f}"
                                                 for b in backends) + " |")
    return status


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory")
    parser.add_argument("--make", action="store_true", help="save the models and Keras' outputs (needs TensorFlow)")
    parser.add_argument("--backends", nargs="+", default=["cuda", "cpu"])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--layers", type=int, default=8, help="slowest layers to list per model (0: none)")
    parser.add_argument("--only", nargs="*", help="model names (default: all)")
    args = parser.parse_args(argv)
    if args.make:
        make(args.directory, args.only)
        return 0
    return check(args.directory, args.backends, args.repeat, args.layers, args.only)


if __name__ == "__main__":
    sys.exit(main())
