"""Where a Model's time goes on backend='cuda': the host launching its graph,
then the GPU finishing the work queued behind it.

    python scripts/gpu_launch_split.py DIR [--repeat 15] [--profile 25]
                                        # on a GPU machine; DIR from gpu_models.py --make

For each NAME.keras in DIR (with NAME.npz holding its input `x`): after two
predicts (compilation, the model's device buffers), `repeat` times: the
batch copied to the device, the graph run without a synchronisation
("launched"), then cuda.synchronize() ("GPU after"), then the output copied
back ("total"); medians. When "GPU after" is small, the host's calls set
the time; when it is large, the kernels do. --profile N: then the same
launches again under cProfile, and the N functions with the most time of
their own (where the host's launch time goes).
"""

import argparse
import cProfile
import glob
import io
import os
import pstats
import time

import numpy as np


def split(path, repeat, profile=0):
    from numba import cuda

    import fastdeconv
    from fastdeconv.backends import cuda_layers

    model = fastdeconv.load_keras(path, backend="cuda")
    x = np.ascontiguousarray(np.load(path[:-len(".keras")] + ".npz")["x"], np.float32)
    for _ in range(2):
        model.predict(x, batch_size=len(x), backend="cuda")
    pool = model._device_pool

    def run():
        xd = cuda_layers.to_device(x)
        cuda.synchronize()
        t0 = time.perf_counter()
        with pool.active():
            outs = model._run_graph([xd], "cuda")
        t1 = time.perf_counter()
        cuda.synchronize()
        t2 = time.perf_counter()
        for o in outs:
            o.copy_to_host()
        t3 = time.perf_counter()
        for o in outs:
            pool.give(o)
        return t1 - t0, t2 - t1, t3 - t0

    times = np.array([run() for _ in range(repeat)])
    report = ""
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(repeat):
            run()
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(profile)
        report = text.getvalue()
    return [1e3 * float(v) for v in np.median(times, axis=0)], report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile the launches and print the top N functions by own time")
    args = parser.parse_args(argv)
    print("| model | launched ms | GPU after ms | total ms |")
    print("|---|---:|---:|---:|")
    reports = []
    for path in sorted(glob.glob(os.path.join(args.directory, "*.keras"))):
        name = os.path.basename(path)[:-len(".keras")]
        (launched, after, total), report = split(path, args.repeat, args.profile)
        print(f"| {name} | {launched:.2f} | {after:.2f} | {total:.2f} |", flush=True)
        if report:
            reports.append(f"\n## {name}: {args.repeat} launches under cProfile\n\n{report}")
    print("".join(reports), end="")


if __name__ == "__main__":
    main()
