"""Small calls: fastdeconv's time per call against TensorFlow's (and
PyTorch's and ONNX Runtime's, when installed), in one process.

    python scripts/bench_small_calls.py [--repeat 9] [--engines NAME ...]

Each case of `fastdeconv.suite.SMALL_CASES` (a few thousand to a few
hundred thousand multiply-adds: the time is mostly each framework's own
per-call work) is checked against fastdeconv's result, then every engine is
timed in alternation (`fastdeconv.bench.run_case`: NumPy arrays in, a
NumPy array out; filters as the case makes them, writable). Prints
microseconds per call and each engine's time / fastdeconv's.
"""

import argparse

from fastdeconv import bench
from fastdeconv.suite import SMALL_CASES


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--engines", nargs="*", default=["fastdeconv-cpu", "tensorflow", "torch", "onnxruntime"])
    args = ap.parse_args()
    usable, skipped = bench.engines(args.engines)
    names = [e.name for e in usable]
    for name, why in skipped.items():
        print(f"not run: {name} ({why})")
    print("| case | " + " | ".join(f"{bench.LABELS.get(n, n)} us" for n in names) + " | "
          + " | ".join(f"{bench.LABELS.get(n, n)} / fastdeconv" for n in names[1:]) + " |")
    print("|---|" + "---:|" * (2 * len(names) - 1))
    for case in SMALL_CASES:
        results = {r.engine: r for r in bench.run_case(case, usable, repeat=args.repeat)}
        us = [results[n].seconds * 1e6 if results[n].seconds else None for n in names]
        base = us[0]
        cells = [f"{v:.0f}" if v else results[n].status for v, n in zip(us, names)]
        ratios = [f"{v / base:.2f}" if v and base else "" for v in us[1:]]
        print(f"| {case.name} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |", flush=True)


if __name__ == "__main__":
    main()
