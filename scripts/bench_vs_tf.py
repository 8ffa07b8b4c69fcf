"""Time fastdeconv against tf.nn in the same process, case by case.

    python scripts/bench_vs_tf.py [--repeat 7] [--only NAME_OR_TAG ...] [--backend cpu] [--read-only]

For every case of `fastdeconv.suite` both engines are warmed up, then timed
in alternation (ours, TF, ours, TF, ...) so machine noise hits both alike;
the table shows medians, GFLOP/s (2 x multiply-adds of the dense
convolution / time), speed ratio TF time / our time (> 1: we are faster),
and the relative difference max|ours - tf| / max|tf|. Prints a markdown
table and the geometric mean of the ratios.

Filters are writable NumPy arrays, so fastdeconv packs them on every call
(as for any caller that may change them); --read-only passes them
read-only, packed once and kept (as a layer's weights are).
"""

import argparse
import os
import platform
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN kernels on by default only on CPUs with
# AVX-512 VNNI/BF16 or AMX; elsewhere its float32 convolutions are
# several times slower and refuse channels-first and dilated transposes.
# Compare with (and test against) TF at its best on every CPU.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import fastdeconv  # noqa: E402
from fastdeconv import bench  # noqa: E402
from fastdeconv.suite import CASES  # noqa: E402


def _median_pair(ours, theirs, repeat):
    a, b = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ours()
        a.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        theirs()
        b.append(time.perf_counter() - t0)
    return float(np.median(a)), float(np.median(b))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--only", nargs="*", help="case names or tags to run (default: all)")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--read-only", action="store_true",
                        help="pass fastdeconv read-only filters (packed once, not on every call)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    cases = [c for c in CASES if not args.only or c.name in args.only or set(c.tags) & set(args.only)]
    if not cases:
        parser.error(f"no case is named or tagged {' or '.join(args.only)}; "
                     f"cases: {', '.join(c.name for c in CASES)}")
    print(f"fastdeconv {fastdeconv.__version__} ({args.backend}) vs TensorFlow {tf.__version__}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
          f"fastdeconv {bench.machine_info().get('simd', '?')}; "
          f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}; float32, median of {args.repeat}"
          f"{'; read-only filters' if args.read_only else ''}")
    print()
    print("| case | op | fastdeconv ms | GFLOP/s | TF ms | TF GFLOP/s | speed vs TF | rel diff |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    ratios = {}
    for case in cases:
        x, w = case.arrays()
        if args.read_only:
            w.flags.writeable = False
        ours_fn = getattr(fastdeconv, case.op)
        tf_fn = getattr(tf.nn, case.op)
        call_args, kwargs = case.args(x, w), case.kwargs()
        tx, tw = tf.constant(x), tf.constant(w)
        tf_args = case.args(tx, tw)
        ours = lambda: ours_fn(*call_args, backend=args.backend, **kwargs)  # noqa: E731
        theirs = lambda: tf_fn(*tf_args, **kwargs).numpy()  # noqa: E731
        got, expected = ours(), theirs()
        diff = float(np.max(np.abs(got - expected)) / max(np.max(np.abs(expected)), 1e-30))
        t_ours, t_tf = _median_pair(ours, theirs, args.repeat)
        ratio = t_tf / t_ours
        ratios[case.name] = ratio
        gf = case.flops / 1e9
        print(f"| {case.name} | {case.op} | {t_ours * 1e3:.2f} | {gf / t_ours:.1f} | {t_tf * 1e3:.2f} | "
              f"{gf / t_tf:.1f} | {ratio:.2f} | {diff:.1e} |", flush=True)
    values = np.array(list(ratios.values()))
    print()
    print(f"geometric mean of speed vs TF: {np.exp(np.mean(np.log(values))):.2f} over {len(values)} cases; "
          f"min {values.min():.2f} ({min(ratios, key=ratios.get)})")
    return ratios


if __name__ == "__main__":
    main()
