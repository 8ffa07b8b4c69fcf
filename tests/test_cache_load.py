"""Kernels served from Numba's on-disk cache in a new process
(`_jit.KernelCache`): the same bits as when they were compiled, every
kernel a cache hit, loaded without Numba's context refresh, and a Numba
function compiled after them still compiles (the refresh then happens
where Numba's compiler needs it). Processes saving variants of one kernel
at once keep every entry, each with its own data
(`_jit.ProcessSafeCacheFile`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from fastdeconv import _jit

CHILD = r"""
import json, sys
import numpy as np
import numba
import fastdeconv as fd
from fastdeconv import layers
from fastdeconv.backends import (cpu_cfband, cpu_cfgather, cpu_dw, cpu_layers, cpu_layout, cpu_patch, cpu_pw,
                                 cpu_rb, cpu_short)

rng = np.random.default_rng(0)
def r(*s, dtype=np.float32):
    return rng.standard_normal(s).astype(dtype)

results = {
    # cl_kernel (no NRT)
    "conv3d": fd.conv3d(r(1, 6, 7, 8, 20), r(3, 3, 3, 20, 40), 1, "SAME", backend="cpu"),
    "conv2d_f64": fd.conv2d(r(2, 9, 9, 5, dtype=np.float64), r(3, 3, 5, 7, dtype=np.float64), 2, "SAME",
                            backend="cpu"),
    # patch_cf and the group normalization's statistics allocate (NRT)
    "patch_cf": fd.conv3d_transpose(r(1, 16, 4, 4, 4), r(2, 2, 2, 8, 16), [1, 8, 8, 8, 8], 2, "SAME",
                                    data_format="NCDHW", backend="cpu"),
    "group_norm": layers.GroupNormalization(groups=4)(r(1, 4, 5, 6, 16)),
    "pool": layers.MaxPooling2D(2)(r(2, 8, 8, 16)),
    "softmax": layers.Activation("softmax")(r(2, 5, 5, 8)),
}
# every activation's epilogue (the exp, tanh, erf ... of libm or the intrinsics)
x = r(1, 6, 6, 8)
for act in layers.ACTIVATIONS:
    conv = layers.Conv2D(4, 3, padding="same", activation=act)
    results["act_" + act] = conv(x)
np.savez(sys.argv[1], **results)
kernels = [getattr(m, n) for m in (cpu_cfband, cpu_cfgather, cpu_dw, cpu_layers, cpu_layout, cpu_patch, cpu_pw,
                                   cpu_rb, cpu_short)
           for n in dir(m) if isinstance(getattr(m, n), numba.core.registry.CPUDispatcher)]
used = [k for k in kernels if k.signatures]
# (the refresh imports Numba's implementations of NumPy's functions)
refreshed = "numba.np.arraymath" in sys.modules
# an uncached function that needs them
total = numba.njit(lambda a: np.cumsum(a).sum())(np.arange(4.0))
print(json.dumps(dict(
    used=len(used), names=sorted(k.py_func.__qualname__ for k in used),
    hits=sum(sum(k.stats.cache_hits.values()) for k in used),
    misses=sum(sum(k.stats.cache_misses.values()) for k in used),
    refreshed=refreshed, total=total)))
"""


def _child(cache_dir, out):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(out)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cached_kernels_load_in_a_new_process_without_numbas_refresh(tmp_path):
    cold = _child(tmp_path / "cache", tmp_path / "cold.npz")
    assert cold["hits"] == 0 and cold["misses"] >= cold["used"] >= 8, cold
    warm = _child(tmp_path / "cache", tmp_path / "warm.npz")
    # (kernels called from other kernels, as the epilogue's activation blocks,
    # come within their caller's cached code: the warm process never calls them)
    assert set(warm["names"]) <= set(cold["names"]) and "cl_kernel" in warm["names"], warm
    assert warm["misses"] == 0 and warm["hits"] >= warm["used"] >= 8, warm
    assert cold["refreshed"], "compiling no longer imports Numba's NumPy implementations: the check below is moot"
    assert not warm["refreshed"], "loading cached kernels refreshed Numba's contexts"
    assert warm["total"] == cold["total"] == 10.0
    with np.load(tmp_path / "cold.npz") as a, np.load(tmp_path / "warm.npz") as b:
        assert sorted(a.files) == sorted(b.files) and len(a.files) > 20
        for k in a.files:
            assert a[k].tobytes() == b[k].tobytes(), k


def test_processes_saving_variants_together_keep_every_entry_and_its_data(tmp_path):
    """Four processes save 40 entries each into one index, started
    together: Numba's own index file loses entries and maps some to
    another process's data here."""
    writers, count = 4, 40
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, str(Path(__file__).with_name("_cache_writer.py")), str(tmp_path),
                               str(w), str(count), str(go)], stderr=subprocess.PIPE, text=True)
             for w in range(writers)]
    go.touch()
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()[-3000:]
    cache = _jit.ProcessSafeCacheFile(cache_path=str(tmp_path), filename_base="kernel-1.py311",
                                      source_stamp=("stamp", 1))
    for w in range(writers):
        for i in range(count):
            assert cache.load(("key", w, i)) == ("data", w, i), (w, i)
    assert len(list(tmp_path.glob("kernel-1.py311.*.nbc"))) == writers * count
