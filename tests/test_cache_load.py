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
from fastdeconv.backends import cpu_layers, cpu_patch, cpu_rb

rng = np.random.default_rng(0)
def r(*s):
    return rng.standard_normal(s).astype(np.float32)

results = {
    # cl_kernel (no NRT)
    "conv3d": fd.conv3d(r(1, 6, 7, 8, 20), r(3, 3, 3, 20, 40), 1, "SAME", backend="cpu"),
    # patch_cf and the group normalization's statistics allocate (NRT)
    "patch_cf": fd.conv3d_transpose(r(1, 16, 4, 4, 4), r(2, 2, 2, 8, 16), [1, 8, 8, 8, 8], 2, "SAME",
                                    data_format="NCDHW", backend="cpu"),
    "group_norm": layers.GroupNormalization(groups=4)(r(1, 4, 5, 6, 16)),
}
kernels = [cpu_rb.cl_kernel, cpu_patch.patch_cf, cpu_layers._normalize_cl_stats]
np.savez(sys.argv[1], **results)
# (the refresh imports Numba's implementations of NumPy's functions)
refreshed = "numba.np.arraymath" in sys.modules
# an uncached function that needs them
total = numba.njit(lambda a: np.cumsum(a).sum())(np.arange(4.0))
print(json.dumps(dict(
    hits=[sum(k.stats.cache_hits.values()) for k in kernels],
    misses=[sum(k.stats.cache_misses.values()) for k in kernels],
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
    assert cold["hits"] == [0, 0, 0] and all(m > 0 for m in cold["misses"])
    warm = _child(tmp_path / "cache", tmp_path / "warm.npz")
    assert warm["misses"] == [0, 0, 0] and all(h > 0 for h in warm["hits"]), warm
    assert cold["refreshed"], "compiling no longer imports Numba's NumPy implementations: the check below is moot"
    assert not warm["refreshed"], "loading cached kernels refreshed Numba's contexts"
    assert warm["total"] == cold["total"] == 10.0
    with np.load(tmp_path / "cold.npz") as a, np.load(tmp_path / "warm.npz") as b:
        assert sorted(a.files) == sorted(b.files) == ["conv3d", "group_norm", "patch_cf"]
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
