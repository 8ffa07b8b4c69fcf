"""Where a Model's time goes on backend='cuda': the host launching its graph,
then the GPU finishing the work queued behind it.

    python scripts/gpu_launch_split.py DIR [--repeat 15]    # on a GPU machine; DIR from gpu_models.py --make

For each NAME.keras in DIR (with NAME.npz holding its input `x`): after two
predicts (compilation, the model's device buffers), `repeat` times: the
batch copied to the device, the graph run without a synchronisation
("launched"), then cuda.synchronize() ("GPU after"), then the output copied
back ("total"); medians. When "GPU after" is small, the host's calls set
the time; when it is large, the kernels do.
"""

import argparse
import glob
import os
import time

import numpy as np


def split(path, repeat):
    from numba import cuda

    import fastdeconv
    from fastdeconv.backends import cuda_layers

    model = fastdeconv.load_keras(path, backend="cuda")
    x = np.ascontiguousarray(np.load(path[:-len(".keras")] + ".npz")["x"], np.float32)
    for _ in range(2):
        model.predict(x, batch_size=len(x), backend="cuda")
    pool = model._device_pool
    launched, after, total = [], [], []
    for _ in range(repeat):
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
        launched.append(t1 - t0)
        after.append(t2 - t1)
        total.append(t3 - t0)
    return [1e3 * float(np.median(v)) for v in (launched, after, total)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    print("| model | launched ms | GPU after ms | total ms |")
    print("|---|---:|---:|---:|")
    for path in sorted(glob.glob(os.path.join(args.directory, "*.keras"))):
        name = os.path.basename(path)[:-len(".keras")]
        launched, after, total = split(path, args.repeat)
        print(f"| {name} | {launched:.2f} | {after:.2f} | {total:.2f} |", flush=True)


if __name__ == "__main__":
    main()
