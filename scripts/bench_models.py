"""Whole-model inference: fastdeconv (load_keras + predict) against
Keras/TensorFlow on the same saved model, in the same run.

    python scripts/bench_models.py [--repeat 5] [--rounds 2] [--only NAME ...] [--backend cpu]

Models (seeded random weights, built and saved by Keras once):
  vgg16_decoder_b1 / _b8  the VGG16-style decoder, 7x7x512 -> 224x224x3, batch 1 / 8
  unet3d_64               the two-level 3-D U-Net (16/32/64 channels, BatchNormalization,
                          Concatenate skips) on a 64^3 single-channel volume, batch 1

Each engine runs in its own child process, so its peak memory is its own:
the child loads the model, resets the kernel's peak-RSS counter
(/proc/self/clear_refs), runs the model once (compilation / graph tracing;
Numba kernels come from its on-disk cache when warm) and then times
`repeat` calls. Reported: median seconds, peak RSS from the first call on
(VmHWM) and that peak minus the RSS of the loaded model before the first
call (the inference working set: activations, workspaces, allocator caches). Engines alternate for `rounds` rounds and the best
median counts, so load from other processes hits both alike. TF is timed
with model(x) and predict_on_batch(x); the faster counts. The outputs are
compared: err = max|ours - tf| / max|tf|.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN kernels on by default only on CPUs with
# AVX-512 VNNI/BF16 or AMX; elsewhere its float32 convolutions are
# several times slower and refuse channels-first and dilated transposes.
# Compare with (and test against) TF at its best on every CPU.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))

CASES = {
    "vgg16_decoder_b1": ("vgg_decoder", (1,), 1),
    "vgg16_decoder_b8": ("vgg_decoder", (1,), 8),
    "unet3d_64": ("unet3d", (64, (16, 32, 64)), 1),
}


def _builders():
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "keras"))
    import keras_models

    return keras_models


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(engine, path, batch, repeat, backend, out_path):
    """Runs in the child process; prints one JSON line."""
    shape = json.loads(os.environ["BENCH_INPUT_SHAPE"])
    x = np.random.default_rng(0).standard_normal([batch] + shape).astype(np.float32)
    if engine == "fastdeconv":
        import fastdeconv

        model = fastdeconv.load_keras(path, backend=backend)
        calls = {"predict": lambda: model.predict(x, batch_size=batch)}
    else:
        import keras

        model = keras.models.load_model(path)
        calls = {"model(x)": lambda: model(x, training=False), "predict_on_batch": lambda: model.predict_on_batch(x)}
    reset = _reset_peak()
    base = _status_kb("VmRSS")  # the loaded model, before any call
    t0 = time.perf_counter()
    for fn in calls.values():
        y = np.asarray(fn())  # compile / trace
    first = time.perf_counter() - t0
    np.save(out_path, y)
    del y
    best = None
    for label, fn in calls.items():
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        med = float(np.median(times))
        if best is None or med < best[1]:
            best = (label, med)
    peak = _status_kb("VmHWM")
    print(json.dumps({"engine": engine, "call": best[0], "median_s": best[1], "first_s": first,
                      "peak_mb": peak / 1024, "peak_above_base_mb": (peak - base) / 1024 if reset else None,
                      "base_mb": base / 1024}))


def run_child(engine, path, batch, repeat, backend, out_path, input_shape):
    env = dict(os.environ, BENCH_INPUT_SHAPE=json.dumps(list(input_shape)))
    cmd = [sys.executable, os.path.abspath(__file__), "--child", engine, path, str(batch), str(repeat), backend,
           out_path]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if res.returncode:
        raise RuntimeError(f"{engine} child failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        engine, path, batch, repeat, backend, out_path = args.child
        return child(engine, path, int(batch), int(repeat), backend, out_path)

    import numba

    KM = _builders()
    import tensorflow as tf

    print(f"# Whole-model inference, fastdeconv ({args.backend}) vs Keras {KM.keras.__version__} / "
          f"TensorFlow {tf.__version__}")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numba threads "
          f"{numba.config.NUMBA_NUM_THREADS}, repeat {args.repeat}, rounds {args.rounds}")
    print()
    print("| model | batch | fastdeconv s | TF s (call) | speed-up | fd peak MB (+working) | "
          "TF peak MB (+working) | err |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        saved = {}
        for name, (builder, bargs, batch) in CASES.items():
            if args.only and name not in args.only:
                continue
            key = (builder, bargs)
            if key not in saved:
                km = KM.randomize(getattr(KM, builder)(*bargs))
                path = os.path.join(tmp, f"{builder}.keras")
                km.save(path)
                saved[key] = (path, tuple(km.input_shape[1:]))
                del km
            path, in_shape = saved[key]
            res = {"fastdeconv": [], "tf": []}
            outs = {e: os.path.join(tmp, f"{name}-{e}.npy") for e in res}
            for _ in range(args.rounds):
                for engine in res:
                    res[engine].append(run_child(engine, path, batch, args.repeat, args.backend, outs[engine],
                                                 in_shape))
            fd = min(res["fastdeconv"], key=lambda r: r["median_s"])
            tfr = min(res["tf"], key=lambda r: r["median_s"])
            err = KM.rel_err(np.load(outs["fastdeconv"]), np.load(outs["tf"]))

            def mem(r):
                extra = r["peak_above_base_mb"]
                return f"{r['peak_mb']:.0f} (+{extra:.0f})" if extra is not None else f"{r['peak_mb']:.0f}"

            print(f"| {name} | {batch} | {fd['median_s']:.3f} | {tfr['median_s']:.3f} ({tfr['call']}) | "
                  f"{tfr['median_s'] / fd['median_s']:.2f}x | {mem(fd)} | {mem(tfr)} | {err:.1e} |", flush=True)


if __name__ == "__main__":
    main()
