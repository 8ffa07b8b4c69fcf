"""The `fastdeconv` command line: shapes (incl. --want and --json), the
Keras / PyTorch / ONNX spellings it prints checked against the real
frameworks where installed, check's exit codes, and one-line errors.

Commands run in-process through `fastdeconv.cli.main` (TensorFlow is
imported once); one test runs `python -m fastdeconv --help` for real.
"""

import importlib.util
import io
import json
import subprocess
import sys
import time

import numpy as np
import pytest

import fastdeconv
from fastdeconv import bench, cli


def _installed(*names):
    try:
        return all(importlib.util.find_spec(n) is not None for n in names)
    except (ValueError, ImportError):  # a module blocked in sys.modules
        return False


HAS_TORCH = _installed("torch")
HAS_ORT = _installed("onnxruntime", "onnx")
HAS_TF = _installed("tensorflow")


def run(*argv):
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


def run_json(*argv):
    code, text = run(*argv, "--json")
    return code, json.loads(text)


EXAMPLE = ["--op", "conv2d_transpose", "--input", "1,64,64,3", "--kernel", "3,3", "--out-channels", "256",
           "--strides", "2", "--padding", "SAME"]


# --- shapes ------------------------------------------------------------------

def test_shapes_lists_every_valid_output_shape():
    code, text = run("shapes", *EXAMPLE)
    assert code == 0
    for shape in ("[1, 127, 127, 256]", "[1, 127, 128, 256]", "[1, 128, 127, 256]", "[1, 128, 128, 256]"):
        assert shape in text
    assert "Keras:" in text and "PyTorch:" in text and "ONNX:" in text
    assert "forward conv2d of this input with the same arguments: [1, 32, 32, 256]" in text


def test_shapes_want_unreachable_names_the_valid_sizes():
    code, text = run("shapes", *EXAMPLE, "--want", "1,129,129,256")
    assert code == 0
    line = text[text.index("--want"):]
    assert "NOT reachable" in line and "127 or 128" in line
    assert "nearest: [1, 128, 128, 256]" in line
    assert "VALID" in line  # VALID would reach 129


def test_shapes_json_matches_the_library():
    code, rep = run_json("shapes", *EXAMPLE, "--want", "1,129,129,256")
    assert code == 0
    assert rep["valid_sizes"] == [[127, 128], [127, 128]]
    shapes = [o["output_shape"] for o in rep["output_shapes"]]
    expected = fastdeconv.conv_transpose_output_shapes([1, 64, 64, 3], [3, 3, 256, 3], 2, "SAME")
    assert shapes == [list(s) for s in expected]
    assert rep["natural_output_shape"] == [1, 128, 128, 256]
    assert rep["want"]["reachable"] is False
    assert rep["want"]["nearest"] == [[1, 128, 128, 256]]
    by_shape = {tuple(o["output_shape"]): o for o in rep["output_shapes"]}
    # Odd SAME total: TF crops the extra unit at the end, PyTorch needs a crop.
    assert by_shape[(1, 128, 128, 256)]["torch"]["crop"] == [[0, 1], [0, 1]]
    assert by_shape[(1, 128, 128, 256)]["keras"]["output_padding"] is None
    assert by_shape[(1, 127, 128, 256)]["keras"]["output_padding"] == [0, 1]
    assert by_shape[(1, 127, 127, 256)]["onnx"]["pads"] == [1, 1, 1, 1]


def test_shapes_want_reachable_and_bad_batch():
    code, rep = run_json("shapes", *EXAMPLE, "--want", "1,127,128,256")
    assert rep["want"]["reachable"] is True
    code, rep = run_json("shapes", *EXAMPLE, "--want", "2,128,128,256")
    assert rep["want"]["reachable"] is False and "batch" in rep["want"]["reason"]


def test_shapes_forward_op_and_keras_limits():
    code, rep = run_json("shapes", "--op", "conv3d", "--input", "1,7,16,16,3", "--kernel", "5,3,3",
                         "--out-channels", "8", "--strides", "2,1,1")
    assert code == 0
    assert rep["output_shape"] == list(fastdeconv.conv_output_shape([1, 7, 16, 16, 3], [5, 3, 3, 3, 8],
                                                                    [1, 2, 1, 1, 1], "SAME"))
    assert rep["port"]["torch"]["pre_pad"] is not None or rep["port"]["torch"]["padding"]
    code, rep = run_json("shapes", "--op", "conv2d_transpose", "--input", "1,5,5,4", "--kernel", "3",
                         "--strides", "2", "--dilations", "2")
    assert all(not o["keras"]["expressible"] for o in rep["output_shapes"])  # stride and dilation > 1


# --- the printed spellings, run through the real frameworks --------------------

# (op, input, kernel, cout, strides, padding, data_format, dilations)
GEOMETRIES = [
    ("conv2d_transpose", (1, 5, 6, 2), (3, 3), 3, 2, "SAME", "NHWC", 1),
    ("conv2d_transpose", (1, 4, 4, 2), (4, 2), 2, (2, 3), "SAME", "NHWC", 1),
    ("conv2d_transpose", (1, 4, 5, 2), (3, 3), 2, 2, "VALID", "NHWC", 1),
    ("conv1d_transpose", (2, 3, 2), (2,), 2, 3, "VALID", "NWC", 1),
    ("conv1d_transpose", (1, 6, 3), (4,), 2, 2, [(2, 0)], "NWC", 1),
    ("conv2d_transpose", (1, 2, 5, 4), (3, 3), 3, 1, "SAME", "NCHW", 2),
    ("conv3d_transpose", (1, 2, 3, 3, 2), (3, 2, 3), 2, 2, "SAME", "NDHWC", 1),
    ("conv2d", (1, 7, 6, 3), (4, 3), 2, 2, "SAME", "NHWC", 1),
    ("conv1d", (1, 9, 2), (3,), 2, 1, [(2, 1)], "NWC", 2),
    ("conv3d", (1, 2, 5, 5, 4), (2, 3, 3), 3, (1, 2, 2), "VALID", "NCDHW", 1),
]


def _cli_args(op, inp, k, cout, s, pad, fmt, d):
    pad_text = pad if isinstance(pad, str) else ",".join(f"{a}:{b}" for a, b in pad)
    join = lambda v: ",".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)  # noqa: E731
    return ["--op", op, "--input", join(inp), "--kernel", join(k), "--out-channels", str(cout),
            "--strides", join(s), "--padding", pad_text, "--data-format", fmt, "--dilations", join(d)]


def _options(geom):
    """(case, porting entry) for every output shape `fastdeconv shapes` lists."""
    code, rep = run_json("shapes", *_cli_args(*geom))
    assert code == 0
    op, inp, k, cout, s, pad, fmt, d = geom
    base = bench.make_case(op, inp, k, cout, s, pad, fmt, d)
    entries = rep["output_shapes"] if base.transpose else [dict(rep["port"], output_shape=rep["output_shape"])]
    for entry in entries:
        case = base if not base.transpose else bench.make_case(op, inp, k, cout, s, pad, fmt, d,
                                                               entry["output_shape"])
        yield case, entry


def _expected(case, x, w):
    return getattr(fastdeconv, case.op)(*case.args(x, w), backend="reference", **case.kwargs())


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (bench extra)")
@pytest.mark.parametrize("geom", GEOMETRIES, ids=lambda g: f"{g[0]}-{g[5]}-{g[6]}")
def test_torch_spelling_computes_the_same(geom):
    import torch
    import torch.nn.functional as F

    for case, entry in _options(geom):
        x, w = case.arrays(np.float64)
        rank = case.rank
        cf = case.data_format.startswith("NC")
        xt = torch.from_numpy(np.ascontiguousarray(x if cf else np.moveaxis(x, -1, 1)))
        wt = torch.from_numpy(np.ascontiguousarray(np.transpose(w, (rank + 1, rank) + tuple(range(rank)))))
        t = entry["torch"]
        if case.transpose:
            y = getattr(F, f"conv_transpose{rank}d")(xt, wt, stride=t["stride"], padding=t["padding"],
                                                      output_padding=t["output_padding"], dilation=t["dilation"])
            y = y[(slice(None), slice(None)) + tuple(slice(a, y.shape[2 + i] - b)
                                                     for i, (a, b) in enumerate(t["crop"]))]
        else:
            xin = F.pad(xt, t["pre_pad"]) if t["pre_pad"] else xt
            y = getattr(F, f"conv{rank}d")(xin, wt, stride=t["stride"], padding=t["padding"],
                                           dilation=t["dilation"], groups=t["groups"])
        y = y.numpy() if cf else np.moveaxis(y.numpy(), 1, -1)
        np.testing.assert_allclose(y, _expected(case, x, w), rtol=0, atol=1e-12, err_msg=str(entry["torch_code"]))


@pytest.mark.skipif(not HAS_ORT, reason="onnx/onnxruntime are not installed (bench extra)")
@pytest.mark.parametrize("geom", [g for g in GEOMETRIES if g[0].endswith("transpose")][:4],
                         ids=lambda g: f"{g[0]}-{g[5]}")
def test_onnx_spelling_computes_the_same(geom):
    for case, entry in _options(geom):
        x, w = case.arrays(np.float32)
        prep = bench.OnnxRuntimeEngine().prepare(case, x, w)
        got = prep.fetch(prep.run())
        np.testing.assert_allclose(got, _expected(case, x, w), rtol=0, atol=2e-5)
        assert bench.porting.onnx_transpose(bench.case_geometry(case))["pads"] == entry["onnx"]["pads"]


@pytest.mark.skipif(not HAS_TF, reason="TensorFlow is not installed")
@pytest.mark.parametrize("geom", [GEOMETRIES[0], GEOMETRIES[1], GEOMETRIES[3], GEOMETRIES[4]],
                         ids=["same-odd", "same-even-k", "valid-1d", "explicit-1d"])
def test_keras_spelling_computes_the_same(geom, tmp_path):
    """Each Keras Conv*Transpose spelling (or the VALID + Cropping workaround)
    built in tf.keras gives fastdeconv's result; saved, it loads in
    fastdeconv (Cropping included) and predicts the same."""
    bench._import_tensorflow()
    import keras

    for case, entry in _options(geom):
        k = entry["keras"]
        n = case.rank
        x, w = case.arrays(np.float32)
        common = dict(kernel_size=k["kernel_size"], strides=k["strides"], dilation_rate=k["dilation_rate"],
                      use_bias=False)
        conv = getattr(keras.layers, f"Conv{n}DTranspose")
        if k["expressible"]:
            layers = [conv(k["filters"], padding=k["padding"], output_padding=k["output_padding"], **common)]
        else:
            wk = k["workaround"]
            crop = [tuple(c) for c in wk["cropping"]]
            layers = [conv(k["filters"], padding="valid", output_padding=wk["output_padding"], **common),
                      getattr(keras.layers, f"Cropping{n}D")(crop[0] if n == 1 else tuple(crop))]
        inp = keras.Input(x.shape[1:])
        y = inp
        for layer in layers:
            y = layer(y)
        model = keras.Model(inp, y)
        layers[0].set_weights([w])
        got = np.asarray(model(x))
        np.testing.assert_allclose(got, _expected(case, x, w), rtol=0, atol=2e-5,
                                   err_msg=entry["keras_code"])
        path = tmp_path / f"{case.name}.keras"
        model.save(path)
        np.testing.assert_allclose(fastdeconv.load_keras(path).predict(x), got, rtol=0, atol=2e-5,
                                   err_msg=entry["keras_code"])


# --- check ---------------------------------------------------------------------

SMALL = ["--op", "conv2d_transpose", "--input", "1,5,5,4", "--kernel", "3", "--out-channels", "3",
         "--strides", "2"]


def test_check_passes_and_reports_every_pair():
    engines = "cpu,reference" + (",tf" if HAS_TF else "")
    code, rep = run_json("check", *SMALL, "--engines", engines)
    assert code == 0 and rep["pass"] is True
    rows = {r["engine"]: r for r in rep["rows"]}
    assert rows["fastdeconv-cpu"]["vs_reference"]["rel"] <= rep["bar"]
    assert "ulp" in rows["fastdeconv-reference"]["vs_fastdeconv_cpu"]
    if HAS_TF:
        assert rows["tensorflow"]["status"] == "ok"
    code, text = run("check", *SMALL, "--engines", "cpu,reference")
    assert code == 0 and "PASS" in text and "rel err" in text


def test_check_exits_1_on_a_mismatch(monkeypatch):
    real = bench.FastdeconvEngine.prepare

    def perturbed(self, case, x, w):
        prep = real(self, case, x, w)
        if self.backend != "cpu":
            return prep
        return bench.Prepared(prep.run, lambda r: np.asarray(r) * np.float32(1 + 1e-4), prep.note)

    monkeypatch.setattr(bench.FastdeconvEngine, "prepare", perturbed)
    code, text = run("check", *SMALL, "--engines", "cpu,reference")
    assert code == 1
    assert "fastdeconv cpu: FAIL" in text


def test_check_float64_bar():
    code, rep = run_json("check", *SMALL, "--engines", "cpu", "--dtype", "float64")
    assert code == 0 and rep["bar"] == 1e-12


# --- errors ----------------------------------------------------------------------

@pytest.mark.parametrize("argv, words", [
    (["shapes", "--op", "conv2d_transpose", "--input", "1,x,3"], "comma-separated integers"),
    (["shapes", "--op", "conv2d_transpose", "--input", "1,8,8,3", "--padding", "FOO"], "SAME, VALID"),
    (["shapes", "--op", "conv2d_transpose", "--input", "1,8,8,3", "--kernel", "3,3,3"], "needs 2"),
    (["shapes", "--op", "conv2d", "--input", "1,8,8"], "expected 4 dims"),
    (["check", "--op", "conv2d_transpose", "--input", "1,8,8,3", "--strides", "2",
      "--output-shape", "1,17,17,3"], "valid sizes are 15 or 16"),
    (["shapes", "--op", "conv2d", "--input", "1,8,8,3", "--output-shape", "1,8,8,3"], "transpose ops only"),
    (["check", "--op", "conv2d", "--input", "1,8,8,3", "--engines", "cpu,mxnet"], "unknown mxnet"),
    (["shapes", "--op", "conv2d", "--input", "1,8,8,3", "--strides", "0"], "strides"),
    (["bench", "--cases", "nope"], "unknown nope"),
])
def test_malformed_arguments_exit_2_with_one_line(argv, words, capsys):
    code = cli.main(argv, out=io.StringIO())
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"fastdeconv {argv[0]}: error:")
    assert words in err


@pytest.mark.parametrize("argv", [["shapes", "--op", "conv9d", "--input", "1,2,3"], ["shapes"],
                                  ["check", "--op", "conv2d", "--input", "1,4,4,1", "--dtype", "int8"]])
def test_argparse_errors_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err


def test_python_dash_m_help():
    proc = subprocess.run([sys.executable, "-m", "fastdeconv", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for word in ("shapes", "check", "bench"):
        assert word in proc.stdout


@pytest.mark.parametrize("command", ["shapes", "check", "bench"])
def test_each_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"fastdeconv {command}" in text and "--json" in text


# --- bench -------------------------------------------------------------------------

def test_bench_one_op_writes_json(tmp_path):
    prefix = str(tmp_path / "b")
    code, doc = run_json("bench", "--op", "conv2d_transpose", "--input", "1,3,3,1", "--kernel", "2",
                         "--out-channels", "3", "--strides", "2", "--engines", "cpu", "--repeat", "1",
                         "--no-progress", "--out", prefix)
    assert code == 0
    (r,) = doc["results"]
    assert r["engine"] == "fastdeconv-cpu" and r["status"] == "ok" and r["gflops"] > 0
    saved = json.loads((tmp_path / "b.json").read_text())
    assert saved["results"][0]["case"] == "conv2d_transpose"
    if _installed("matplotlib"):
        assert (tmp_path / "b.png").stat().st_size > 0
    else:
        assert "png_skipped" in doc["files"]


def test_bench_list():
    code, text = run("bench", "--list")
    assert code == 0 and "unet_c3t_32c64_k2s2" in text


def test_core_import_stays_light():
    """fastdeconv (and its CLI module) import without TF, torch, onnxruntime or matplotlib."""
    code = ("import sys, fastdeconv, fastdeconv.cli, fastdeconv.bench; "
            "bad = [m for m in ('tensorflow', 'torch', 'onnxruntime', 'matplotlib') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_time_round_robin_times_calls_that_follow_a_call():
    """After each pause, one untimed call (warm=True): an engine whose
    first call after a pause is slow (threads parked, a core away) is timed
    on the calls that follow, as in a loop; with warm=False that first
    call is the one timed."""
    last = [0.0]

    def engine():
        now = time.perf_counter()
        time.sleep(0.03 if now - last[0] > 0.015 else 0.001)
        last[0] = time.perf_counter()

    # target=0: one call per sample
    warm = bench.time_round_robin({"e": engine}, repeat=3, target=0, settle=0.02)["e"]
    cold = bench.time_round_robin({"e": engine}, repeat=3, target=0, settle=0.02, warm=False)["e"]
    assert warm < 0.015 < cold
