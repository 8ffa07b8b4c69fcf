"""The `fastdeconv` command line (also `python -m fastdeconv`).

    fastdeconv shapes  output shapes, valid transpose output_shapes, and the
                       Keras / PyTorch / ONNX arguments of the same layer
    fastdeconv check   one op on random data through every engine: errors vs
                       the float64 reference, exit 1 beyond SPEC's bar
    fastdeconv bench   the benchmark suite (or one op): GFLOP/s per engine,
                       JSON and a PNG chart
    fastdeconv warmup  compile every CPU kernel variant into Numba's
                       on-disk cache (once per machine: deployment, image build)

Shape rules come from `fastdeconv._args` / `_shapes` (through
`fastdeconv.porting`); nothing here re-derives them. TensorFlow, PyTorch,
ONNX Runtime and matplotlib are optional and imported only when used.
"""

import argparse
import itertools
import json
import os
import sys

import numpy as np

from . import _shapes, bench, porting
from .errors import ShapeError

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2

QUICK_CASES = ("src_c3t_2x2x7x7x64", "src_c3t_chain2", "src_c2t_3x3x1_to_6", "src_c2t_64x3_to_128x256",
               "c3t_dilated2_16x32x32c32")


class UsageError(Exception):
    """A malformed argument: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --- argument parsing --------------------------------------------------------

def _ints(text, what):
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v != "")
    except ValueError:
        raise UsageError(f"{what}={text!r}: expected comma-separated integers, e.g. 1,64,64,3") from None
    if not values:
        raise UsageError(f"{what}={text!r}: expected at least one integer")
    return values


def _padding(text, rank):
    """SAME / VALID (any case), or explicit pads: 'b:a,b:a' per spatial dim,
    'p,p' (symmetric per dim) or one value for every dim."""
    if text.upper() in ("SAME", "VALID"):
        return text.upper()
    pairs = []
    try:
        for item in text.replace(" ", "").split(","):
            a, _, b = item.partition(":")
            pairs.append((int(a), int(b if b else a)))
    except ValueError:
        raise UsageError(f"--padding={text!r}: expected SAME, VALID or explicit pads like 1:1,0:2 "
                         f"(before:after per spatial dim)") from None
    if len(pairs) == 1 and rank > 1:
        pairs = pairs * rank
    if len(pairs) != rank:
        raise UsageError(f"--padding={text!r} has {len(pairs)} pairs; expected {rank} (one per spatial dim)")
    return pairs


def _spatial(text, what):
    values = _ints(text, what)
    return values[0] if len(values) == 1 else list(values)


def _add_common(p, op_required=True):
    g = p.add_argument_group("the operation (tf.nn arguments)")
    g.add_argument("--op", required=op_required, choices=porting._OPS, metavar="OP",
                   help="conv1d, conv2d, conv3d, conv1d_transpose, conv2d_transpose or conv3d_transpose")
    g.add_argument("--input", required=op_required, metavar="SHAPE",
                   help="input shape in data_format order, comma-separated (e.g. 1,64,64,3)")
    g.add_argument("--kernel", metavar="K", help="spatial kernel sizes (e.g. 3,3 or 3 for all dims; default 3)")
    g.add_argument("--out-channels", type=int, metavar="C",
                   help="channels of the result (default: the input's channels)")
    g.add_argument("--strides", default="1", metavar="S", help="an int or one per spatial dim (default 1)")
    g.add_argument("--dilations", default="1", metavar="D", help="an int or one per spatial dim (default 1)")
    g.add_argument("--padding", default="SAME", metavar="P",
                   help="SAME (default), VALID, or explicit before:after per spatial dim, e.g. 1:1,0:2")
    g.add_argument("--data-format", metavar="FMT",
                   help="NWC/NCW, NHWC/NCHW, NDHWC/NCDHW (default: channels-last)")
    g.add_argument("--output-shape", metavar="SHAPE",
                   help="transpose ops: the output_shape in data_format order (default: the natural size)")
    g.add_argument("--dtype", default="float32", choices=("float16", "float32", "float64"))
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of text")


def _case_from_args(a, output_shape=True):
    """A validated suite.Case from the common flags; any problem is a UsageError."""
    try:
        return _build_case(a, output_shape)
    except (ShapeError, ValueError, TypeError) as e:
        raise UsageError(str(e)) from None


def _build_case(a, output_shape):
    rank = porting.op_rank(a.op)
    kernel = _ints(a.kernel, "--kernel") if a.kernel else (3,)
    if len(kernel) not in (1, rank):
        raise UsageError(f"--kernel={a.kernel!r} has {len(kernel)} sizes; {a.op} needs {rank} (or one for all)")
    inp = _ints(a.input, "--input")
    out_shape = _ints(a.output_shape, "--output-shape") if (output_shape and a.output_shape) else None
    if out_shape is not None and not a.op.endswith("_transpose"):
        raise UsageError(f"--output-shape is for transpose ops only, not {a.op}")
    fmt = a.data_format.upper() if a.data_format else None
    case = bench.make_case(a.op, inp, kernel, a.out_channels, _spatial(a.strides, "--strides"),
                           _padding(a.padding, rank), fmt, _spatial(a.dilations, "--dilations"), out_shape,
                           name=a.op)
    if a.out_channels is not None and a.out_channels < 1:
        raise UsageError(f"--out-channels={a.out_channels}: expected a positive channel count")
    bench.case_geometry(case)  # validates everything, as the op would
    return case


# --- shapes ------------------------------------------------------------------

def _forward_twin(case):
    """The forward conv of the same input and arguments (filters in forward layout)."""
    op = case.op.replace("_transpose", "")
    k = case.filter_shape[:-2]
    cout, cin = case.filter_shape[-2:]
    try:
        g = porting.geometry(op, case.input_shape, k + (cin, cout), case.strides, case.padding, case.data_format,
                             case.dilations)
    except (ShapeError, ValueError) as e:
        return op, None, str(e)
    return op, list(g.plan.out_shape), None


def _porting(g):
    return {"keras": porting.keras_transpose(g) if g.plan.transpose else porting.keras_forward(g),
            "torch": porting.torch_transpose(g) if g.plan.transpose else porting.torch_forward(g),
            "onnx": porting.onnx_transpose(g) if g.plan.transpose else porting.onnx_forward(g),
            "keras_code": porting.describe_keras(g), "torch_code": porting.describe_torch(g),
            "onnx_code": porting.describe_onnx(g)}


def _want(case, g0, valid, want):
    """Is `want` a valid output_shape? If not, the nearest ones and why."""
    p = g0.plan
    rank = p.rank
    info = {"shape": list(want), "reachable": False}
    if len(want) != rank + 2:
        info["reason"] = f"{list(want)} has {len(want)} entries; expected {rank + 2} in {g0.data_format} order"
        return info
    cf = p.channels_first
    batch, chans = want[0], (want[1] if cf else want[-1])
    spatial = want[2:] if cf else want[1:-1]
    problems = []
    if batch != p.out_shape[0]:
        problems.append(f"batch {batch} must equal the input's batch {p.out_shape[0]}")
    if chans != p.out_channels:
        problems.append(f"channels {chans} must equal --out-channels {p.out_channels}")
    names = g0.data_format.replace("N", "").replace("C", "")
    nearest_per_dim = []
    for i, (o, sizes) in enumerate(zip(spatial, valid)):
        if not sizes:
            problems.append(f"{names[i]}: no size maps back to the input")
            nearest_per_dim.append([])
            continue
        if o not in sizes:
            problems.append(f"{names[i]}={o} is not a valid size (valid: {' or '.join(map(str, sizes))})")
        best = min(abs(s - o) for s in sizes)
        nearest_per_dim.append([s for s in sizes if abs(s - o) == best])
    info["reachable"] = not problems
    if problems:
        info["reason"] = "; ".join(problems)
        if all(nearest_per_dim):
            info["nearest"] = [list(_args_join(p, combo)) for combo in itertools.product(*nearest_per_dim)]
        # Which string padding would reach the wanted spatial size?
        others = []
        for pad in ("SAME", "VALID"):
            sizes = [_shapes.transpose_sizes(n, k, s, d, pad)
                     for n, k, s, d in zip(p.in_spatial, p.kernel, p.strides, p.dilations)]
            if all(o in sz for o, sz in zip(spatial, sizes)) and pad != g0.padding:
                others.append(pad)
        if others and batch == p.out_shape[0] and chans == p.out_channels:
            info["reachable_with_padding"] = others
    return info


def _args_join(plan, spatial):
    from ._args import join_layout

    return join_layout(plan.batch_shape, spatial, plan.out_channels, plan.channels_first)


def shapes_report(case, want=None):
    g0 = bench.case_geometry(case)
    p = g0.plan
    rep = {"op": case.op, "input_shape": list(case.input_shape), "filter_shape": list(case.filter_shape),
           "data_format": g0.data_format, "strides": list(p.strides), "dilations": list(p.dilations),
           "padding": g0.padding if isinstance(g0.padding, str) else [list(t) for t in g0.padding]}
    if not p.transpose:
        rep["output_shape"] = list(p.out_shape)
        rep["pads"] = [list(t) for t in p.pads]
        rep["port"] = _porting(g0)
        if want is not None:
            ok = list(want) == list(p.out_shape)
            rep["want"] = {"shape": list(want), "reachable": ok}
            if not ok:
                rep["want"]["reason"] = f"{case.op} always gives {list(p.out_shape)} for this input"
                rep["want"]["nearest"] = [list(p.out_shape)]
        return rep
    op_f, fwd_shape, fwd_err = _forward_twin(case)
    rep["forward"] = {"op": op_f, "output_shape": fwd_shape, "error": fwd_err}
    valid = [_shapes.transpose_sizes(n, k, s, d, g0.padding if isinstance(g0.padding, str) else g0.padding[i])
             for i, (n, k, s, d) in enumerate(zip(p.in_spatial, p.kernel, p.strides, p.dilations))]
    rep["valid_sizes"] = valid
    natural = bench.case_geometry(bench.Case(case.name, case.op, case.input_shape, case.filter_shape, case.strides,
                                             case.padding, None, case.data_format, case.dilations))
    rep["natural_output_shape"] = list(natural.plan.out_shape)
    options = []
    for combo in itertools.product(*valid):
        shape = _args_join(p, combo)
        g = bench.case_geometry(bench.Case(case.name, case.op, case.input_shape, case.filter_shape, case.strides,
                                           case.padding, shape, case.data_format, case.dilations))
        options.append(dict({"output_shape": list(shape), "crop": [list(t) for t in g.plan.pads],
                             "natural": list(shape) == rep["natural_output_shape"]}, **_porting(g)))
    rep["output_shapes"] = options
    if want is not None:
        rep["want"] = _want(case, g0, valid, want)
    return rep


def _print_shapes(rep, out):
    w = out.write
    pad = rep["padding"] if isinstance(rep["padding"], str) else \
        ",".join(f"{a}:{b}" for a, b in rep["padding"])
    w(f"{rep['op']}: input {rep['input_shape']} ({rep['data_format']}), filters {rep['filter_shape']}, "
      f"strides {rep['strides']}, dilations {rep['dilations']}, padding {pad}\n")
    if "output_shape" in rep:
        w(f"\noutput shape: {rep['output_shape']}  (pads before/after per dim: {rep['pads']})\n")
        port = rep["port"]
        w(f"  Keras:   {port['keras_code']}\n  PyTorch: {port['torch_code']}\n  ONNX:    {port['onnx_code']}\n")
    else:
        f = rep["forward"]
        if f["output_shape"]:
            w(f"\nforward {f['op']} of this input with the same arguments: {f['output_shape']}\n")
        dims = rep["data_format"].replace("N", "").replace("C", "")
        per_dim = "; ".join(f"{d} {' or '.join(map(str, v)) if v else 'none'}" for d, v in zip(dims, rep["valid_sizes"]))
        opts = rep["output_shapes"]
        w(f"\nvalid output_shape values ({len(opts)}; per spatial dim: {per_dim}):\n")
        w(f"natural size (output_shape=None): {rep['natural_output_shape']}\n")
        for o in opts[:32]:
            mark = "  (natural)" if o["natural"] else ""
            w(f"\n  {o['output_shape']}{mark}   TF crops (start, end) {o['crop']}\n")
            w(f"    Keras:   {o['keras_code']}\n    PyTorch: {o['torch_code']}\n    ONNX:    {o['onnx_code']}\n")
        if len(opts) > 32:
            w(f"\n  ... {len(opts) - 32} more (see --json)\n")
    want = rep.get("want")
    if want:
        if want["reachable"]:
            w(f"\n--want {want['shape']}: reachable\n")
        else:
            w(f"\n--want {want['shape']}: NOT reachable: {want.get('reason', '')}\n")
            if want.get("nearest"):
                w(f"  nearest: {', '.join(map(str, want['nearest']))}\n")
            if want.get("reachable_with_padding"):
                w(f"  reachable with padding {' or '.join(want['reachable_with_padding'])} instead\n")


def cmd_shapes(a, out):
    case = _case_from_args(a)
    want = _ints(a.want, "--want") if a.want else None
    rep = shapes_report(case, want)
    if a.json:
        json.dump(rep, out, indent=1)
        out.write("\n")
    else:
        _print_shapes(rep, out)
    return EXIT_OK


# --- check -------------------------------------------------------------------

def check_report(case, dtype, engine_names, seed=0):
    case = bench.resolved(case)
    x, w = case.arrays(dtype=dtype, seed=seed)
    ref = bench.oracle(case, x, w)
    usable, skipped = bench.engines(engine_names)
    rows, outs = [], {}
    for e in usable:
        row = {"engine": e.name}
        try:
            prep = e.prepare(case, x, w)
            out = np.asarray(prep.fetch(prep.run()))
        except bench.Unsupported as u:
            row.update(status="unsupported", note=str(u))
            rows.append(row)
            continue
        except Exception as ex:  # noqa: BLE001
            row.update(status="error", note=bench._first_line(ex))
            rows.append(row)
            continue
        if out.dtype != np.dtype(dtype):
            out = out.astype(dtype)
        outs[e.name] = out
        row.update(status="ok", note=prep.note, vs_reference=bench.compare(out, ref))
        rows.append(row)
    base = outs.get("fastdeconv-cpu")
    for row in rows:
        if row["status"] == "ok" and base is not None and row["engine"] != "fastdeconv-cpu":
            row["vs_fastdeconv_cpu"] = bench.compare(outs[row["engine"]], base)
    errs = {r["engine"]: r["vs_reference"]["rel"] for r in rows if r["status"] == "ok"}
    bar = bench.accuracy_bar(dtype, [errs.get("tensorflow"), errs.get("torch")])
    verdicts = {}
    for name in bench.FASTDECONV_ENGINES:
        if name in errs:
            verdicts[name] = bool(errs[name] <= bar)
    for row in rows:
        if row["engine"] in bench.PEER_ENGINES and row["status"] == "ok":
            row["agrees"] = bool(row["vs_reference"]["rel"] <= max(bar, 1e-4 if dtype != np.float16 else 1e-2))
    g = bench.case_geometry(case)
    return {"op": case.op, "input_shape": list(case.input_shape), "filter_shape": list(case.filter_shape),
            "output_shape": list(g.plan.out_shape), "data_format": g.data_format, "dtype": np.dtype(dtype).name,
            "seed": seed, "rows": rows, "skipped": skipped, "bar": bar,
            "bar_rule": {"float32": "max(err TF, err PyTorch, 2e-6)", "float64": "1e-12",
                         "float16": "max(err TF, err PyTorch, 2e-6 + 2**-11)"}[np.dtype(dtype).name],
            "pass": all(verdicts.values()) and bool(verdicts), "verdicts": verdicts}


def _print_check(rep, out):
    w = out.write
    w(f"{rep['op']}: input {rep['input_shape']}, filters {rep['filter_shape']} -> {rep['output_shape']} "
      f"({rep['data_format']}, {rep['dtype']}, seed {rep['seed']})\n\n")
    w(f"{'engine':<22} {'rel err':>9} {'abs err':>9} {'ULP max/median':>16}   "
      f"{'rel vs cpu':>10} {'ULP vs cpu':>16}\n")
    for r in rep["rows"]:
        label = bench.LABELS.get(r["engine"], r["engine"])
        if r["status"] != "ok":
            w(f"{label:<22} {r['status']}: {r['note']}\n")
            continue
        v, c = r["vs_reference"], r.get("vs_fastdeconv_cpu")
        ulp = lambda d: f"{d['ulp']}/{d['ulp_median']:g}"  # noqa: E731
        cpu = f"{c['rel']:>10.2e} {ulp(c):>16}" if c else f"{'':>10} {'':>16}"
        flag = "" if r.get("agrees", True) else "   <- disagrees"
        note = f"   ({r['note']})" if r.get("note") else ""
        w(f"{label:<22} {v['rel']:>9.2e} {v['abs']:>9.2e} {ulp(v):>16}   {cpu}{flag}{note}\n")
    for name, why in rep["skipped"].items():
        w(f"{bench.LABELS.get(name, name):<22} skipped: {why}\n")
    w("(rel err = max|out - ref| / max|ref| against the float64 reference; ULP in the result dtype;\n"
      " 'vs cpu' compares with fastdeconv cpu)\n")
    w(f"\nbar: {rep['dtype']} relative error <= {rep['bar_rule']} = {rep['bar']:.2e}\n")
    for name, ok in rep["verdicts"].items():
        w(f"  {bench.LABELS[name]}: {'PASS' if ok else 'FAIL'}\n")
    w(("PASS" if rep["pass"] else "FAIL") + "\n")


def cmd_check(a, out):
    case = _case_from_args(a)
    names = _engine_list(a.engines, bench.ALL_ENGINES)
    rep = check_report(case, np.dtype(a.dtype), names, seed=a.seed)
    if a.json:
        json.dump(rep, out, indent=1)
        out.write("\n")
    else:
        _print_check(rep, out)
    return EXIT_OK if rep["pass"] else EXIT_MISMATCH


def _engine_list(text, default):
    if not text:
        return list(default)
    names = [n.strip() for n in text.split(",") if n.strip()]
    alias = {"cpu": "fastdeconv-cpu", "reference": "fastdeconv-reference", "cuda": "fastdeconv-cuda",
             "tf": "tensorflow", "pytorch": "torch", "ort": "onnxruntime", "onnx": "onnxruntime"}
    names = [alias.get(n, n) for n in names]
    bad = [n for n in names if n not in bench.ALL_ENGINES]
    if bad:
        raise UsageError(f"--engines: unknown {', '.join(bad)}; choose from {', '.join(bench.ALL_ENGINES)} "
                         f"(or cpu, reference, cuda, tf, torch, ort)")
    return names


# --- bench -------------------------------------------------------------------

def _bench_cases(a):
    from .suite import CASES

    if a.op:
        return [_case_from_args(a)]
    if a.input:
        raise UsageError("--input needs --op (or leave both out to run the suite)")
    cases = list(CASES)
    if a.quick and not a.cases:
        cases = [c for c in CASES if c.name in QUICK_CASES]
    if a.cases:
        wanted = [t.strip() for t in a.cases.split(",") if t.strip()]
        known = {c.name for c in CASES} | {t for c in CASES for t in c.tags}
        bad = [t for t in wanted if t not in known]
        if bad:
            raise UsageError(f"--cases: unknown {', '.join(bad)}; names and tags: see 'fastdeconv bench --list'")
        cases = [c for c in CASES if c.name in wanted or set(c.tags) & set(wanted)]
    return cases


def cmd_bench(a, out):
    from .suite import CASES

    if a.list:
        for c in CASES:
            out.write(f"{c.name:<32} {c.op:<18} {','.join(c.tags):<22} {bench.flops(c) / 1e9:8.2f} GFLOP\n")
        return EXIT_OK
    cases = _bench_cases(a)
    names = _engine_list(a.engines, [n for n in bench.ALL_ENGINES if n != "fastdeconv-reference"])
    repeat = a.repeat if a.repeat is not None else (3 if a.quick else 5)
    usable, skipped = bench.engines(names)
    progress = None if a.no_progress else bench.Progress()
    results = bench.run_suite(cases, usable, repeat=repeat, dtype=np.dtype(a.dtype), progress=progress)
    engine_names = [e.name for e in usable]
    doc = {"machine": bench.machine_info(), "dtype": a.dtype, "repeat": repeat,
           "engines": {e.name: e.version() for e in usable}, "skipped_engines": skipped,
           "results": [r.as_dict() for r in results]}
    paths = {}
    if a.out:
        base = a.out
        os.makedirs(os.path.dirname(os.path.abspath(base)), exist_ok=True)
        with open(base + ".json", "w") as fh:
            json.dump(doc, fh, indent=1)
        paths["json"] = base + ".json"
        why = bench.plot_gflops(results, engine_names, base + ".png",
                                title=f"fastdeconv bench ({a.dtype}, median of {repeat})")
        if why:
            paths["png_skipped"] = why
        else:
            paths["png"] = base + ".png"
    doc["files"] = paths
    if a.json:
        json.dump(doc, out, indent=1)
        out.write("\n")
        return EXIT_OK
    out.write(f"GFLOP/s ({a.dtype}, median of {repeat} alternating calls; '*' = see notes; higher is better)\n\n")
    out.write(bench.gflops_table(results, engine_names) + "\n")
    notes = [r for r in results if r.note or r.status != "ok"]
    if notes:
        out.write("\nnotes:\n")
        for r in notes:
            out.write(f"  {r.case} / {bench.LABELS.get(r.engine, r.engine)}: {r.status}"
                      f"{': ' + r.note if r.note else ''}\n")
    for name, why in skipped.items():
        out.write(f"  {bench.LABELS.get(name, name)} skipped: {why}\n")
    for kind, path in paths.items():
        out.write(f"{kind}: {path}\n")
    return EXIT_OK


# --- entry point -------------------------------------------------------------

SHAPES_EXAMPLES = """examples:
  fastdeconv shapes --op conv2d_transpose --input 1,64,64,3 --kernel 3,3 --out-channels 256 --strides 2
  fastdeconv shapes --op conv2d_transpose --input 1,64,64,3 --kernel 3 --out-channels 256 --strides 2 \\
      --want 1,129,129,256
  fastdeconv shapes --op conv3d --input 1,7,224,224,3 --kernel 5,3,3 --out-channels 64 --strides 2,1,1 --json
  fastdeconv shapes --op conv1d_transpose --input 1,16,8 --kernel 4 --strides 2 --padding 1:2
"""

CHECK_EXAMPLES = """examples:
  fastdeconv check --op conv3d_transpose --input 2,2,7,7,64 --kernel 3,3,3 --out-channels 32 --strides 2
  fastdeconv check --op conv2d --input 1,32,32,16 --kernel 3 --out-channels 8 --dilations 2 --padding VALID
  fastdeconv check --op conv2d_transpose --input 1,3,3,1 --kernel 2 --out-channels 3 --strides 2 \\
      --output-shape 1,5,6,3 --dtype float64 --json

exit status: 0 all fastdeconv engines within the bar, 1 a mismatch, 2 bad arguments.
The bar (SPEC): float32 relative error vs the float64 reference <= max(err TF, err PyTorch, 2e-6);
float64 <= 1e-12.
"""

BENCH_EXAMPLES = """examples:
  fastdeconv bench --quick                 # a few small cases, under a minute
  fastdeconv bench                         # the whole suite (fastdeconv.suite.CASES)
  fastdeconv bench --cases unet,vgg --engines cpu,tf --out results/unet
  fastdeconv bench --op conv3d_transpose --input 1,32,32,32,64 --kernel 2 --out-channels 32 --strides 2
  fastdeconv bench --list

Writes OUT.json (all timings, machine, versions) and OUT.png (needs matplotlib).
Peers run on their native layout; fastdeconv-cuda times device arrays in and out.
"""


WARMUP_EXAMPLES = """examples:
  fastdeconv warmup                        # float32 and float64, both layouts, the layers' kernels
  fastdeconv warmup --dtypes float32 --layouts NDHWC --no-layers
  fastdeconv warmup --jobs 4                # four processes compiling at once

Afterwards every first call of a CPU op or layer, in any process, loads its kernel
from the cache (0.1-0.2 s) instead of compiling it (0.4-3 s), whatever the shapes.
The cache is next to the installed package (or in NUMBA_CACHE_DIR) and specific
to the CPU model: run this where the package runs.
"""


def cmd_warmup(a, out):
    from . import warmup

    dtypes = [d.strip() for d in a.dtypes.split(",") if d.strip()]
    layouts = [f.strip() for f in a.layouts.split(",") if f.strip()]
    log = None if a.quiet else (lambda label, seconds: out.write(f"{seconds:6.2f} s  {label}\n"))
    try:
        seconds = warmup.warmup(dtypes, layouts, layers=not a.no_layers, progress=log, jobs=a.jobs)
    except ValueError as e:
        raise UsageError(str(e)) from None
    out.write(f"warmup: {seconds:.1f} s ({','.join(dtypes)}; {','.join(layouts)}"
              f"{'' if a.no_layers else '; layers'})\n")
    return EXIT_OK


def build_parser():
    parser = _Parser(prog="fastdeconv", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="run 'fastdeconv COMMAND --help' for each command's flags and examples")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("shapes", help="output shapes and the Keras/PyTorch/ONNX spelling of a layer",
                       description="Output shapes of one op, every valid output_shape of a transpose, and the "
                                   "equivalent Keras, PyTorch and ONNX arguments.",
                       epilog=SHAPES_EXAMPLES, formatter_class=fmt)
    _add_common(p)
    p.add_argument("--want", metavar="SHAPE", help="is this output shape reachable? if not, what is nearest")
    p.set_defaults(func=cmd_shapes)

    p = sub.add_parser("check", help="compare one op across fastdeconv backends and other frameworks",
                       description="Run one op on random data through fastdeconv (cpu, reference, cuda when "
                                   "usable) and every installed framework; print errors against the float64 "
                                   "reference and between engines.", epilog=CHECK_EXAMPLES, formatter_class=fmt)
    _add_common(p)
    p.add_argument("--engines", metavar="LIST", help="comma-separated engines (default: all usable)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("bench", help="GFLOP/s per engine on the benchmark suite",
                       description="Time the benchmark suite (or one op given with --op ...) on every usable "
                                   "engine, calls alternating between engines; print GFLOP/s, write JSON and a "
                                   "PNG chart.", epilog=BENCH_EXAMPLES, formatter_class=fmt)
    _add_common(p, op_required=False)
    p.add_argument("--quick", action="store_true", help="a few small cases and 3 repeats (under a minute)")
    p.add_argument("--cases", metavar="LIST", help="comma-separated case names or tags (see --list)")
    p.add_argument("--list", action="store_true", help="list the suite's cases and exit")
    p.add_argument("--engines", metavar="LIST",
                   help="comma-separated: fastdeconv-cpu, fastdeconv-reference, fastdeconv-cuda, tensorflow, "
                        "torch, onnxruntime (default: all usable but reference)")
    p.add_argument("--repeat", type=int, metavar="N", help="timed samples per engine and case (default 5)")
    p.add_argument("--out", default="fastdeconv-bench", metavar="PREFIX",
                   help="write PREFIX.json and PREFIX.png (default ./fastdeconv-bench; '' to skip)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("warmup", help="compile every CPU kernel variant into Numba's on-disk cache",
                       description="Make small calls that reach every CPU kernel variant of the given dtypes and "
                                   "layouts (and the layers' kernels), so that later first calls only load them "
                                   "from the cache.", epilog=WARMUP_EXAMPLES, formatter_class=fmt)
    p.add_argument("--dtypes", default="float32,float64", metavar="LIST",
                   help="comma-separated: float32, float64, float16 (computed in float32; default: float32,float64)")
    p.add_argument("--layouts", default="NDHWC,NCDHW", metavar="LIST",
                   help="comma-separated data formats: channels-last (NDHWC, NHWC, NWC, channels_last) and "
                        "channels-first (NCDHW, NCHW, NCW, channels_first); each family runs the same kernels "
                        "(default: NDHWC,NCDHW)")
    p.add_argument("--no-layers", action="store_true", help="only the convolution kernels")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="processes sharing the calls, each compiling on one core (default 1)")
    p.add_argument("--quiet", action="store_true", help="only the summary line")
    p.set_defaults(func=cmd_warmup)
    return parser


def main(argv=None, out=None):
    out = out or sys.stdout
    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "func", None):
        parser.print_help(out)
        return EXIT_USAGE
    prog = f"fastdeconv {a.command}"
    try:
        if getattr(a, "repeat", None) is not None and a.repeat < 1:
            raise UsageError(f"--repeat={a.repeat}: expected at least 1")
        return a.func(a, out)
    except UsageError as e:
        text = " ".join(str(e).split())
        sys.stderr.write(f"{prog}: error: {text}\n")
        return EXIT_USAGE


def entry():
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
