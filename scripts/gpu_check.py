"""Check the CUDA backend on a real GPU, then time it against cuDNN.

    python scripts/gpu_check.py                  # on a GPU machine
    python scripts/gpu_check.py --simulate       # smoke test on the CUDA simulator (tiny shapes)
    python scripts/gpu_check.py --skip-tests --only unet   # timings only, cases by name or tag

1. Correctness: runs `pytest tests/cuda` in a subprocess on the hardware
   (NUMBA_ENABLE_CUDASIM unset, FASTDECONV_REQUIRE_CUDA=1 so a broken CUDA
   setup fails instead of skipping). On hardware the suite uses the shipped
   tunables and adds the `hardware` cases (larger shapes). With --simulate
   the same suite runs on the simulator instead.
2. Timings: every case of `fastdeconv.suite.CASES` (float32), backend 'cuda'
   on Numba device arrays (no host transfers in the timed region), against
   PyTorch's torch.nn.functional.conv{N}d / conv_transpose{N}d on CUDA
   (cuDNN), mapped per SEMANTICS.md section 5: channels-first tensors,
   asymmetric pads by F.pad, transposes natively (padding=pb,
   output_padding=O-L+2pb) when PyTorch can express them, else the crop
   trick. The layout permutation to channels-first is done once, outside the
   timing; F.pad and the crop are inside it (they are part of getting TF's
   answer out of PyTorch). Device time from CUDA events around one call
   (host overhead of the call included), median of --repeat after a warm-up
   call; the first call (compile) is reported separately.
   Columns: ms (the whole call, host work included), kernel ms (CUDA
   events around the conv kernel's launch alone: `KernelTimer`), GFLOP/s
   (2 x multiply-adds of the dense convolution / the whole call's time),
   cuDNN ms, speed vs cuDNN (cuDNN time / ours; > 1: we are faster), our
   fraction of the device's fp32 peak (non-tensor-core FMA rate; from a
   table of known devices, else SMs x FP32 lanes x clock), and the relative
   difference max|ours - torch| / max|torch|. PyTorch may use TF32 tensor
   cores unless disabled; it is disabled here (allow_tf32 = False) so both
   sides compute in full fp32.
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Dense fp32 FMA peak (no tensor cores), TFLOP/s, by a substring of the device name.
PEAK_TFLOPS = [
    ("H200", 67.0), ("H100 PCIe", 51.2), ("H100 NVL", 60.0), ("H100", 67.0), ("GH200", 67.0),
    ("B200", 80.0), ("A100", 19.5), ("A10G", 31.2), ("A10", 31.2), ("L40S", 91.6), ("L40", 90.5),
    ("L4", 30.3), ("RTX 4090", 82.6), ("RTX 3090", 35.6), ("V100", 15.7), ("T4", 8.1),
]
# FP32 lanes per SM by compute capability major (minor overrides below).
LANES_PER_SM = {6: 64, 7: 64, 8: 64, 9: 128, 10: 128, 12: 128}
LANES_PER_SM_MINOR = {(6, 1): 128, (8, 6): 128, (8, 7): 128, (8, 9): 128}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--simulate", action="store_true",
                        help="run on the CUDA simulator with tiny shapes (checks the script, not the GPU)")
    parser.add_argument("--skip-tests", action="store_true", help="only the timings")
    parser.add_argument("--skip-bench", action="store_true", help="only the correctness suite")
    parser.add_argument("--pytest-args", default="", help="extra arguments for pytest, e.g. '-x -k transpose'")
    parser.add_argument("--repeat", type=int, default=None, help="timed calls per case (default 20; simulate 2)")
    parser.add_argument("--only", nargs="*", help="case names or tags to time (default: all)")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="override CUDA tunables for the timings, e.g. --set REG_M=8 REG_N=8")
    return parser.parse_args(argv)


def run_tests(args):
    env = dict(os.environ, FASTDECONV_REQUIRE_CUDA="1")
    if args.simulate:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    else:
        env.pop("NUMBA_ENABLE_CUDASIM", None)
    cmd = [sys.executable, "-m", "pytest", "tests/cuda", "-q", "-ra", *args.pytest_args.split()]
    print("$", ("NUMBA_ENABLE_CUDASIM=1 " if args.simulate else "") + " ".join(cmd[1:]), flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=env)


def tiny(case):
    """The same op, layout, strides, dilations and padding on tiny shapes."""
    import fastdeconv
    from fastdeconv.suite import Case

    rank, cf = case.rank, (case.data_format or "").startswith("NC")
    shape = list(case.input_shape)
    spatial = slice(2, None) if cf else slice(1, -1)
    ch = 1 if cf else -1
    shape[0] = 1
    shape[spatial] = [min(n, 3) for n in shape[spatial]]
    shape[ch] = min(shape[ch], 3)
    c = shape[ch]
    filt = list(case.filter_shape)
    # forward [*k, in, out]; transpose [*k, out, in]
    filt[-2:] = [(min(filt[-2], 2), c) if case.transpose else (c, min(filt[-1], 2))][0]
    kw = dict(data_format=case.data_format or {1: "NWC", 2: "NHWC", 3: "NDHWC"}[rank], dilations=case.dilations)
    output_shape = None
    if case.transpose:
        output_shape = tuple(fastdeconv.conv_transpose_output_shapes(shape, filt, case.strides, case.padding,
                                                                     **kw)[-1])
    return Case(case.name, case.op, tuple(shape), tuple(filt), case.strides, case.padding, output_shape,
                case.data_format, case.dilations, case.tags)


def device_peak(cuda):
    """(TFLOP/s, device name, where the number comes from)."""
    dev = cuda.get_current_device()
    name = getattr(dev, "name", "CUDA simulator")
    name = name.decode() if isinstance(name, bytes) else str(name)
    for key, tflops in PEAK_TFLOPS:
        if key in name:
            return tflops, name, "table"
    try:
        cc = tuple(dev.compute_capability)
        lanes = LANES_PER_SM_MINOR.get(cc, LANES_PER_SM.get(cc[0], 64))
        tflops = dev.MULTIPROCESSOR_COUNT * lanes * 2 * dev.CLOCK_RATE * 1e3 / 1e12
        return tflops, name, f"{dev.MULTIPROCESSOR_COUNT} SMs x {lanes} lanes x {dev.CLOCK_RATE / 1e6:.2f} GHz"
    except Exception:  # simulator, or an attribute the driver no longer reports
        return float("nan"), name, "unknown"


def torch_call(case, plan, x, w, device="cuda"):
    """A function computing the case with torch on `device` from channels-first
    tensors (TF-shaped arrays x, w are converted once here)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    rank = case.rank
    cf = plan.channels_first
    xt = torch.from_numpy(np.ascontiguousarray(x if cf else np.moveaxis(x, -1, 1))).to(device)
    perm = (rank + 1, rank) + tuple(range(rank))  # TF [*k, a, b] -> torch [b, a, *k]
    wt = torch.from_numpy(np.ascontiguousarray(np.transpose(w, perm))).to(device)
    s, d = list(plan.strides), list(plan.dilations)
    flat_pads = lambda pairs: [v for pair in reversed(pairs) for v in pair]  # noqa: E731  last dim first
    if not case.transpose:
        conv = getattr(F, f"conv{rank}d")
        if all(pb == pa for pb, pa in plan.pads):
            return lambda: conv(xt, wt, stride=s, padding=[p[0] for p in plan.pads], dilation=d, groups=plan.groups)
        pads = flat_pads(plan.pads)
        return lambda: conv(F.pad(xt, pads), wt, stride=s, dilation=d, groups=plan.groups)
    convt = getattr(F, f"conv_transpose{rank}d")
    pb = [p[0] for p in plan.pads]
    op = [p[0] - p[1] for p in plan.pads]  # O - L + 2*pb, with pa = L - pb - O
    if all(0 <= o < max(si, di) for o, si, di in zip(op, s, d)):
        return lambda: convt(xt, wt, stride=s, padding=pb, output_padding=op, dilation=d)
    crop = flat_pads([(-a, -b) for a, b in plan.pads])  # negative F.pad crops, positive pads zeros
    return lambda: F.pad(convt(xt, wt, stride=s, dilation=d), crop)


def time_calls(fn, repeat, make_event, simulate):
    """Median seconds of one call, from events around it (wall clock under
    the simulator, whose events do not time)."""
    times = []
    for _ in range(repeat):
        if simulate:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
            continue
        start, end = make_event(), make_event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    return times[len(times) // 2]


class KernelTimer:
    """Brackets every launch of the conv kernel with CUDA events (wall clock
    around a synchronised launch under the simulator): the device time of
    the kernel alone, without the host's work per call."""

    def __init__(self, cuda, simulate):
        from fastdeconv.backends.cuda import kernels

        self.cuda, self.simulate, self.samples = cuda, simulate, []
        real = kernels.conv_kernel
        timer = self

        class Timed:
            def __init__(self, kernel):
                self.kernel = kernel

            def __getitem__(self, config):
                launch = self.kernel[config]

                def run(*args):
                    if timer.simulate:
                        t0 = time.perf_counter()
                        launch(*args)
                        timer.samples.append(time.perf_counter() - t0)
                        return
                    start, end = cuda.event(timing=True), cuda.event(timing=True)
                    start.record()
                    launch(*args)
                    end.record()
                    timer.samples.append((start, end))
                return run

        kernels.conv_kernel = lambda *key: Timed(real(*key))

    def median(self):
        """Median seconds of the launches since the last call (None: none)."""
        if not self.samples:
            return None
        times = []
        for sample in self.samples:
            if isinstance(sample, tuple):
                sample[1].synchronize()
                sample = sample[0].elapsed_time(sample[1]) / 1e3
            times.append(sample)
        self.samples = []
        times.sort()
        return times[len(times) // 2]


def run_bench(args):
    import numpy as np
    from numba import cuda

    import fastdeconv
    from fastdeconv.suite import CASES

    try:
        import torch
        have_torch = torch.cuda.is_available() and not args.simulate
        if have_torch:
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.benchmark = True
    except ImportError:
        torch, have_torch = None, False
    repeat = args.repeat or (2 if args.simulate else 20)
    if args.simulate:  # the simulator's tiles as in tests/cuda (a Python thread per CUDA thread)
        from fastdeconv.backends.cuda import config

        config.THREADS_PER_BLOCK, config.MAX_THREADS_N, config.REG_M, config.REG_N = 4, 2, 2, 2
        sys.setswitchinterval(5e-5)
        sys.path.insert(0, str(ROOT / "tests" / "cuda"))
        from _cuda_support import fix_simulator_shared_array_race

        fix_simulator_shared_array_race()
    from fastdeconv.backends.cuda import config as tunables

    for item in args.set:
        key, _, value = item.partition("=")
        if not hasattr(tunables, key):
            raise SystemExit(f"--set {item}: no tunable {key!r} in fastdeconv/backends/cuda/config.py")
        setattr(tunables, key, int(value))
    peak, name, source = device_peak(cuda)
    cases = [c for c in CASES if not args.only or c.name in args.only or set(c.tags) & set(args.only)]
    if args.simulate:
        cases = [tiny(c) for c in cases]
    print(f"\nfastdeconv {fastdeconv.__version__} backend='cuda' on {name} "
          f"(fp32 peak {peak:.1f} TFLOP/s, {source}); "
          f"{'PyTorch ' + torch.__version__ + ' cuDNN ' + str(torch.backends.cudnn.version()) if have_torch else 'no PyTorch CUDA: cuDNN columns empty'}; "
          f"{platform.python_version()}; float32, median of {repeat}{'; ' + ' '.join(args.set) if args.set else ''}{' (SIMULATOR, tiny shapes, wall clock)' if args.simulate else ''}\n")
    print("| case | op | first call ms | ms | kernel ms | GFLOP/s | % of peak | cuDNN ms | cuDNN GFLOP/s | "
          "speed vs cuDNN | rel diff |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    timer = KernelTimer(cuda, args.simulate)
    ratios = []
    for case in cases:
        x, w = case.arrays()
        plan = case.plan()
        fn = getattr(fastdeconv, case.op)
        dx, dw = cuda.to_device(x), cuda.to_device(w)
        call_args, kwargs = case.args(dx, dw), case.kwargs()
        ours = lambda: fn(*call_args, backend="cuda", **kwargs)  # noqa: E731
        t0 = time.perf_counter()
        got = ours()
        cuda.synchronize()
        first = time.perf_counter() - t0
        got = got.copy_to_host()
        timer.median()  # drop the first call's launches
        t_ours = time_calls(ours, repeat, lambda: cuda.event(timing=True), args.simulate)
        t_kernel = timer.median()
        gflop = case.flops / 1e9
        row = [case.name, case.op, f"{first * 1e3:.1f}", f"{t_ours * 1e3:.3f}",
               f"{t_kernel * 1e3:.3f}" if t_kernel is not None else "-", f"{gflop / t_ours:.1f}",
               f"{100 * gflop / t_ours / (peak * 1e3):.1f}" if peak == peak else "-"]
        if have_torch:
            theirs = torch_call(case, plan, x, w)
            expected = theirs()
            torch.cuda.synchronize()
            expected = expected.cpu().numpy()
            if not plan.channels_first:
                expected = np.moveaxis(expected, 1, -1)
            diff = float(np.max(np.abs(got - expected)) / max(np.max(np.abs(expected)), 1e-30)) if got.size else 0.0
            t_torch = time_calls(theirs, repeat, lambda: torch.cuda.Event(enable_timing=True), False)
            ratios.append(t_torch / t_ours)
            row += [f"{t_torch * 1e3:.3f}", f"{gflop / t_torch:.1f}", f"{t_torch / t_ours:.2f}", f"{diff:.1e}"]
        else:
            row += ["-", "-", "-", "-"]
        print("| " + " | ".join(row) + " |", flush=True)
    if ratios:
        values = np.array(ratios)
        print(f"\ngeometric mean of speed vs cuDNN: {np.exp(np.mean(np.log(values))):.2f} over {len(values)} cases; "
              f"min {values.min():.2f}, max {values.max():.2f}")
    return 0


def main(argv=None):
    args = parse_args(argv)
    status = 0
    if not args.skip_tests:
        status = run_tests(args)
        print(f"tests/cuda: {'passed' if status == 0 else f'FAILED (exit {status})'}", flush=True)
    if not args.skip_bench:
        # Must be set before numba is imported (run_bench imports it).
        if args.simulate:
            os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        else:
            os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
        sys.path.insert(0, str(ROOT))
        status = run_bench(args) or status
    return status


if __name__ == "__main__":
    sys.exit(main())
