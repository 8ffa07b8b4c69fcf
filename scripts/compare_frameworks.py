"""Time fastdeconv against TensorFlow, PyTorch and ONNX Runtime on the suite.

    python scripts/compare_frameworks.py [--repeat 5] [--cases NAME_OR_TAG ...] [--out-dir benchmarks/results]

For every case of `fastdeconv.suite` each engine (fastdeconv cpu, cuda when
usable, tf.nn, torch.nn.functional, a one-node ONNX model in ONNX Runtime)
is first checked against the float64 reference (fastdeconv's `reference`
backend on float64 inputs): a peer that disagrees by more than 1e-3 is not
timed, and a peer that cannot express a case (or refuses it) is listed with
the reason. The mapping of TF's layouts, SAME padding (asymmetric when the
total is odd) and output_shape onto PyTorch padding/output_padding (+ a
crop) and ONNX pads/output_padding is `fastdeconv.porting` (shared
SEMANTICS section 5). Peers get their native channels-first layout; the
conversion is done once, outside the timed calls.

Then the engines are timed in alternation (a, b, c, a, b, c, ...), so load
from other jobs hits all alike. The float32 GEMM peak of this machine is a
NumPy 4096^3 matmul measured in the same run (best of 3, at the start and
the end; the larger is used).

Writes OUT_DIR/compare_frameworks.{md,json,png} and prints the markdown.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from fastdeconv import bench  # noqa: E402
from fastdeconv.suite import CASES  # noqa: E402

TIMED = ["fastdeconv-cpu", "fastdeconv-cuda", "tensorflow", "torch", "onnxruntime"]


def _ratio(r, tf):
    if r.seconds is None or tf is None or tf.seconds is None:
        return ""
    return f"{tf.seconds / r.seconds:.2f}"


def markdown(results, peak, machine, args, versions, skipped, elapsed, peaks=()):
    by_case = {}
    for r in results:
        by_case.setdefault(r.case, []).append(r)
    lines = []
    load = machine.get("load_average")
    lines.append(f"Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs, {machine['platform']}; "
                 f"fastdeconv {machine.get('simd', '?')}; TF_ENABLE_ONEDNN_OPTS={machine.get('tf_onednn')}; "
                 f"Python {machine['python']}, NumPy {machine['numpy']}, Numba {machine.get('numba', '?')}; "
                 + ", ".join(f"{bench.LABELS[k]} {v}" for k, v in versions.items())
                 + (f"; fastdeconv commit {machine['commit']}" if machine.get("commit") else "")
                 + (f"; load average at the end {load[0]:.1f}" if load else "") + ".")
    if skipped:
        lines.append("Not run: " + "; ".join(f"{bench.LABELS.get(k, k)} ({v})" for k, v in skipped.items()) + ".")
    lines.append(f"float32, median of {args.repeat} alternating calls per engine; float32 GEMM peak "
                 f"(NumPy 4096^3 matmul, best of {len(peaks)} samples taken through the run: "
                 f"{', '.join(f'{v:.0f}' for v in peaks)}) {peak:.0f} GFLOP/s; whole run {elapsed / 60:.1f} min.")
    lines.append("")
    lines.append("| case | op | engine | median ms | GFLOP/s | speed vs TF | % of GEMM peak | rel err vs float64 |"
                 " notes |")
    lines.append("|---|---|---|---:|---:|---:|---:|---:|---|")
    for case, rows in by_case.items():
        tf = next((r for r in rows if r.engine == "tensorflow"), None)
        for r in rows:
            if r.seconds is not None:
                cells = [bench.fmt_ms(r.seconds), bench.fmt_gf(r.gflops), _ratio(r, tf),
                         f"{100 * r.gflops / peak:.1f}"]
            else:
                cells = ["-", "-", "-", "-"]
            err = f"{r.rel_err:.1e}" if r.rel_err is not None else "-"
            note = r.note if r.status == "ok" else f"{r.status}: {r.note}"
            lines.append(f"| {case} | {r.op} | {bench.LABELS.get(r.engine, r.engine)} | " + " | ".join(cells)
                         + f" | {err} | {note.replace('|', '/')} |")
    lines.append("")
    lines.append("Summary (geometric means over the cases each engine ran):")
    lines.append("")
    lines.append("| engine | cases run | speed vs TF | % of GEMM peak | worst rel err |")
    lines.append("|---|---:|---:|---:|---:|")
    engines = list(dict.fromkeys(r.engine for r in results))
    for e in engines:
        rows = [r for r in results if r.engine == e and r.seconds is not None]
        ratios = []
        for r in rows:
            tf = next((t for t in results if t.case == r.case and t.engine == "tensorflow"), None)
            if tf is not None and tf.seconds is not None:
                ratios.append(tf.seconds / r.seconds)
        g = bench.geomean(ratios)
        frac = bench.geomean([r.gflops / peak for r in rows])
        errs = [r.rel_err for r in results if r.engine == e and r.rel_err is not None]
        lines.append(f"| {bench.LABELS.get(e, e)} | {len(rows)}/{len(by_case)} | {g:.2f} |" if g else
                     f"| {bench.LABELS.get(e, e)} | {len(rows)}/{len(by_case)} | - |")
        lines[-1] += (f" {100 * frac:.1f} |" if frac else " - |") + (f" {max(errs):.1e} |" if errs else " - |")
    lines.append("")
    lines.append("speed vs TF = TF median / engine median (> 1: faster than TF). rel err = max|out - ref| / "
                 "max|ref| against fastdeconv's float64 reference on the same inputs. GFLOP/s counts "
                 "2 x multiply-adds of the dense convolution, padded taps included, so an engine that skips "
                 "taps landing in the padding (small spatial sizes under SAME) can exceed 100% of the GEMM "
                 "peak. PyTorch and ONNX Runtime run on channels-first inputs converted once outside the "
                 "timed call; 'crop' marks PyTorch calls that need a slice after the op (odd SAME totals).")
    return "\n".join(lines)


def compact(results, peak):
    """One row per case: GFLOP/s per engine, fastdeconv's speed vs TF and share
    of the GEMM peak, and each engine's error against the float64 reference."""
    engines = list(dict.fromkeys(r.engine for r in results))
    by = {(r.case, r.engine): r for r in results}
    cases = list(dict.fromkeys(r.case for r in results))
    head = ["case"] + [f"{bench.LABELS.get(e, e)} GFLOP/s" for e in engines] + \
        ["fastdeconv vs TF", "fastdeconv % of peak", "rel err " + " / ".join(
            bench.LABELS.get(e, e).replace("fastdeconv ", "fd ") for e in engines)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for c in cases:
        cells = [c]
        for e in engines:
            r = by.get((c, e))
            cells.append(bench.fmt_gf(r.gflops) if r and r.gflops else (r.status if r else ""))
        fd, tf = by.get((c, "fastdeconv-cpu")), by.get((c, "tensorflow"))
        cells.append(_ratio(fd, tf) if fd else "")
        cells.append(f"{100 * fd.gflops / peak:.0f}%" if fd and fd.gflops else "")
        cells.append(" / ".join(f"{by[(c, e)].rel_err:.1e}" if (c, e) in by and by[(c, e)].rel_err is not None
                                else "-" for e in engines))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--cases", nargs="*", help="case names or tags (default: all)")
    p.add_argument("--engines", nargs="*", default=TIMED)
    p.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--name", default="compare_frameworks", help="file name stem of the outputs")
    args = p.parse_args(argv)

    t0 = time.time()
    cases = [c for c in CASES if not args.cases or c.name in args.cases or set(c.tags) & set(args.cases)]
    usable, skipped = bench.engines(args.engines)
    versions = {e.name: e.version() for e in usable}
    print(f"engines: {', '.join(versions)}; skipped: {skipped or 'none'}", file=sys.stderr, flush=True)
    # The machine may be shared: sample the GEMM peak before, between every
    # few cases and after, and use the best sample.
    peaks = [bench.gemm_peak()]
    progress = bench.Progress()
    results = []
    for i, case in enumerate(cases):
        progress(i, len(cases), case)
        results.extend(bench.run_case(case, usable, repeat=args.repeat, with_oracle=True))
        if (i + 1) % 5 == 0:
            peaks.append(bench.gemm_peak())
    progress(len(cases), len(cases), None)
    peaks.append(bench.gemm_peak())
    peak = max(peaks)
    print(f"float32 GEMM peak samples: {', '.join(f'{v:.0f}' for v in peaks)} GFLOP/s", file=sys.stderr, flush=True)
    elapsed = time.time() - t0
    machine = bench.machine_info()
    text = markdown(results, peak, machine, args, versions, skipped, elapsed, peaks)
    short = compact(results, peak)
    cut = text.index("\n\n| case |")
    header, body = text[:cut], text[cut + 2:]
    header = "\n".join("- " + line for line in header.splitlines())

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.md").write_text(
        "# fastdeconv vs TensorFlow, PyTorch and ONNX Runtime\n\n"
        f"Generated by `python scripts/compare_frameworks.py --repeat {args.repeat}`"
        f" on {time.strftime('%Y-%m-%d')}.\n\n" + header + "\n\n![GFLOP/s per case and engine](" + args.name
        + ".png)\n\n## Per case\n\n" + short + "\n\n## Every engine\n\n" + body + "\n")
    doc = {"machine": machine, "gemm_peak_gflops": {"used": peak, "samples": peaks}, "repeat": args.repeat,
           "versions": versions, "skipped_engines": skipped, "seconds": elapsed,
           "results": [r.as_dict() for r in results]}
    (out / f"{args.name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    why = bench.plot_gflops(results, [e.name for e in usable], out / f"{args.name}.png",
                            title=f"GFLOP/s, float32, median of {args.repeat}; {machine['cpu']}, "
                                  f"{machine['logical_cpus']} CPUs; GEMM peak {peak:.0f}")
    print(short)
    print()
    print(text)
    print(f"\nwrote {out / (args.name + '.md')}, .json" + (", .png" if not why else f" ({why})"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
