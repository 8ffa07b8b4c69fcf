"""fastdeconv.warmup: after it, no call of a warmed dtype and layout
compiles (or loads) a kernel variant it did not reach, whatever the
shapes, strides, dilations, padding, channel counts and thread count.
Each check runs in a fresh interpreter (_warmup_worker.py), so only the
warmup's calls have typed the kernels before the random calls."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastdeconv.warmup
from fastdeconv import cli

WORKER = Path(__file__).with_name("_warmup_worker.py")


def _run(*args, threads=2, env=None):
    env = dict(os.environ if env is None else env, NUMBA_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, str(WORKER), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["new"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_warmup_reaches_every_variant(dtype):
    """Random convolutions and transposes of 1-3 dimensions (1-512
    channels, strides 1-3, dilations, SAME/VALID, read-only and writable
    filters) and layers, both layouts, on three threads (packed rows
    depend on the rows per thread): none gives a kernel a new variant."""
    new = _run(dtype, "NDHWC,NCDHW", 1, dtype, "cl,cf", 300, threads=3)
    assert new == [], "calls that took a kernel variant the warmup did not reach:\n" + "\n".join(
        f"{n['call']}: {n['new']}" for n in new)


def test_a_warmup_in_two_processes_compiles_every_variant_into_the_cache(tmp_path):
    """warmup(jobs=2) on an empty cache: its two processes share the calls
    and compile into one cache at once; afterwards random calls in this
    process compile nothing (each variant loads from the cache)."""
    new = _run("float32", "NDHWC", 1, "float32", "cl", 120, 2, env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)))
    assert new == [], "calls that compiled a kernel variant after the 2-process warmup:\n" + "\n".join(
        f"{n['call']}: {n['new']}" for n in new)


def test_channels_first_warmup_covers_one_pixel_inputs():
    """Channels-first calls on one input pixel run channels-last kernels
    (cpu.ONE_PIXEL_CL): a channels-first warmup reaches their variants."""
    new = _run("float32", "NCDHW", 0, "float32", "cf1", 300)
    assert new == [], "calls that took a kernel variant the warmup did not reach:\n" + "\n".join(
        f"{n['call']}: {n['new']}" for n in new)


def test_the_check_sees_a_variant_the_warmup_skipped():
    """The same check finds the variants of a layout that was not warmed."""
    new = _run("float32", "NDHWC", 0, "float32", "cf", 12)
    assert new, "channels-first calls after a channels-last warmup reported no new kernel variant"


@pytest.mark.parametrize("kwargs, text", [
    (dict(dtypes=["int32"]), "dtype 'int32'"),
    (dict(dtypes=["bogus"]), "dtype 'bogus'"),
    (dict(layouts=["NHCW"]), "data format 'NHCW'"),
    (dict(jobs=0), "jobs=0"),
    (dict(jobs=2.5), "jobs=2.5"),
])
def test_warmup_refuses_unknown_dtypes_and_formats(kwargs, text):
    with pytest.raises(ValueError, match=text):
        fastdeconv.warmup.warmup(**kwargs)


def test_warmup_command_line(capsys):
    assert cli.main(["warmup", "--dtypes", "float16", "--layouts", "NWC", "--no-layers", "--quiet"]) == cli.EXIT_OK
    assert "warmup:" in capsys.readouterr().out
    assert cli.main(["warmup", "--layouts", "NCHWX"]) == cli.EXIT_USAGE
    assert "data format 'NCHWX'" in capsys.readouterr().err
