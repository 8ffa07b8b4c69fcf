"""Channels-first against channels-last: the same convolutions on NDHWC /
NHWC input and on NCDHW / NCHW input, timed in one process.

    python scripts/bench_layouts.py [--repeat 15] [--only TEXT ...]

For every case both layouts are timed in alternation
(fastdeconv.bench.time_round_robin, --repeat samples each); the table
shows the medians and the ratio channels-first / channels-last (1.0: as
fast). Filters are read-only (packed once, as a layer's weights are).
The two layouts give the same bits (tests/test_cpu_paths.py); this only
times them. The cases: fastdeconv.suite.LAYOUT_CASES (also asv's
Layouts).
"""

import argparse

import numpy as np

from fastdeconv.bench import time_round_robin
from fastdeconv.suite import LAYOUT_CASES, layout_calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--only", nargs="*", default=None, metavar="TEXT",
                    help="only the cases whose name contains one of these")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("| case | channels-last ms | channels-first ms | channels-first / channels-last |")
    print("|---|---:|---:|---:|")
    for case in LAYOUT_CASES:
        if args.only and not any(t in case[0] for t in args.only):
            continue
        last, first = layout_calls(case, rng)
        t = time_round_robin({"last": last, "first": first}, repeat=args.repeat)
        a, b = t["last"] * 1e3, t["first"] * 1e3
        print(f"| {case[0]} | {a:.2f} | {b:.2f} | {b / a:.2f} |", flush=True)


if __name__ == "__main__":
    main()
