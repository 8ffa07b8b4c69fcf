"""asv benchmarks over the named cases of fastdeconv.suite (cpu backend).

Run offline in the current environment:
    cd asv_bench && asv run --python=same --set-commit-hash $(git rev-parse HEAD)
"""

import fastdeconv
from fastdeconv.suite import CASES

NAMES = [case.name for case in CASES]
_BY_NAME = {case.name: case for case in CASES}


class Ops:
    params = [NAMES]
    param_names = ["case"]
    timeout = 300

    def setup(self, name):
        case = _BY_NAME[name]
        x, w = case.arrays()
        self.fn = getattr(fastdeconv, case.op)
        self.args, self.kwargs = case.args(x, w), case.kwargs()
        self.flops = case.flops
        self.fn(*self.args, **self.kwargs)  # compile outside the timed region

    def time_cpu(self, name):
        self.fn(*self.args, **self.kwargs)

    def peakmem_cpu(self, name):
        self.fn(*self.args, **self.kwargs)

    def track_gflops(self, name):
        import time

        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            self.fn(*self.args, **self.kwargs)
            best = min(best, time.perf_counter() - t0)
        return self.flops / best / 1e9

    track_gflops.unit = "GFLOP/s"
