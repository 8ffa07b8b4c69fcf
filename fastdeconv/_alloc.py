"""Output arrays of the cpu kernels: memory that an earlier result or layer
has finished with, where there is some.

Why: fresh arrays of many MB are fresh pages. A 90 MB conv3d result cost
~15 ms of page faults on top of a 25 ms kernel, and a U-Net predict took
~3,000 page faults and 20-40 ms of system time, for memory that had just
been released (glibc returns large blocks to the system at once).
TensorFlow's allocator keeps such memory; this module does the same in two
ways:

- While a Model runs, its `Pool` lends the buffers its layers release.
- Otherwise, arrays of at least RECYCLE_MIN bytes are views of a `_Block`;
  when the caller drops the array (and every view of it), the block's
  memory goes to `_recycler` and serves a later result of up to its size.
  At most FASTDECONV_RECYCLE_MB (environment, default 512) MB are kept.
"""

import contextlib
import math
import os
import threading
import weakref

import numpy as np

_active = threading.local()

RECYCLE_MIN = 1 << 20
ALIGN = 64  # bytes: a Pool's arrays start on a cache line


def empty(shape, dtype):
    """np.empty(shape, dtype): from the running Model's pool if there is
    one, else, for large arrays, from memory of dropped results."""
    pool = getattr(_active, "pool", None)
    if pool is not None:
        return pool.take(shape, dtype)
    return recycled(shape, dtype)


def recycled(shape, dtype, min_bytes=None):
    """np.empty(shape, dtype) from memory of dropped results from
    min_bytes (default RECYCLE_MIN; never from a Model's pool): for work
    arrays dropped after a call. (Python arithmetic on the shape: np.prod alone took 4.5 us, a
    third of this function's time, on calls of ~1 ms.)"""
    dtype = np.dtype(dtype)
    shape = (int(shape),) if np.isscalar(shape) else tuple(map(int, shape))
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < (RECYCLE_MIN if min_bytes is None else min_bytes) or _recycler.cap <= 0:
        return np.empty(shape, dtype)
    return np.asarray(_Block(_recycler.take(nbytes), shape, dtype))


# glibc's default threshold for serving an allocation by mmap
WORK_MIN = 128 << 10


def work(shape, dtype):
    """np.empty(shape, dtype) for a work array dropped at the end of a call
    (never from a Model's pool): from memory of dropped results already
    from WORK_MIN bytes. A work array of 512 KB beside a 512 KB result
    made glibc return the top of its heap to the system after each call
    and the next call fault in fresh pages: 0.62 instead of 0.26 ms
    (benchmarks/NOTES.md section 79)."""
    return recycled(shape, dtype, WORK_MIN)


class _Block:
    """Owner of a result's memory (numpy keeps it as the array's base);
    hands the memory to the recycler when the last view of it is gone."""

    __slots__ = ("raw", "__array_interface__")

    def __init__(self, raw, shape, dtype):
        self.raw = raw
        self.__array_interface__ = {"data": (raw.ctypes.data, False), "shape": shape,
                                    "typestr": dtype.str, "version": 3}

    def __del__(self):
        try:
            _recycler.give(self.raw)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class _Recycler:
    """Free blocks by byte size, at most `cap` bytes in all. A block given
    when the cap is reached replaces the blocks given longest ago: results
    of the sizes a process makes now are kept, not those of calls it made
    once (a benchmark suite, or a service whose input sizes change, filled
    the cap with old sizes and then made every new result of fresh pages:
    ~2 ms per 30 MB)."""

    def __init__(self, cap):
        self.cap = cap
        self._lock = threading.Lock()
        self._free = {}  # size -> [(tick given, block)], oldest first
        self._bytes = 0
        self._tick = 0

    def _drop(self, n, i):
        _, raw = self._free[n].pop(i)
        if not self._free[n]:
            del self._free[n]
        self._bytes -= raw.nbytes
        return raw

    def take(self, nbytes):
        with self._lock:
            fits = [n for n in self._free if nbytes <= n <= 2 * nbytes]
            if fits:
                return self._drop(min(fits), -1)  # the newest: the likeliest still in the caches
        # on a cache line: the kernels' streaming stores need whole vectors
        # at aligned addresses (cpu_simd.vtstore_stream)
        raw = np.empty(nbytes + ALIGN, np.uint8)
        skip = -raw.ctypes.data % ALIGN
        return raw[skip:skip + nbytes]

    def give(self, raw):
        with self._lock:
            if raw.nbytes > self.cap:
                return
            while self._bytes + raw.nbytes > self.cap:
                self._drop(min(self._free, key=lambda n: self._free[n][0][0]), 0)
            self._tick += 1
            self._free.setdefault(raw.nbytes, []).append((self._tick, raw))
            self._bytes += raw.nbytes

    def free_bytes(self):
        with self._lock:
            return self._bytes


def _cap_from_env():
    text = os.environ.get("FASTDECONV_RECYCLE_MB", "512")
    try:
        return max(0, int(float(text) * (1 << 20)))
    except ValueError:
        raise ValueError(f"FASTDECONV_RECYCLE_MB={text!r}: expected a number of megabytes "
                         f"(0 turns result memory reuse off)") from None


_recycler = _Recycler(_cap_from_env())


def readonly(a):
    """A read-only view of array a (a itself when it is read-only already).
    Kernels take their inputs this way: Numba types a read-only array apart
    from a writable one, so a caller's read-only input (np.load with
    mmap_mode="r", np.frombuffer, a framework tensor's .numpy()) would
    otherwise compile a second variant of every kernel it reaches (1.2-2 s
    each)."""
    if not a.flags.writeable:
        return a
    v = a.view()
    v.flags.writeable = False
    return v


def root(a):
    """The array that owns a's memory."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


# Read-only arrays (a layer's weights) -> {key: what was made from them}:
# the cpu backend's packed filters and finiteness (packing and checking cost
# ~50 us per call; a U-Net predict makes 15 conv calls), the cuda backend's
# device copies. Read-only arrays cannot change under the cache.
MEMO = {}
# ... and writable arrays of at most WRITABLE_MEMO_BYTES, with a copy of
# their bytes: what was made from them is used while their bytes are the
# same (a small filter's comparison costs 1-4 us, packing it again 20-40 us
# of a ~90 us call; benchmarks/NOTES.md section 122).
# (At most WRITABLE_MEMO_MAX arrays: what is made from one may be a view
# of it, which keeps it alive.)
WRITABLE_MEMO = {}
WRITABLE_MEMO_BYTES = 64 << 10
WRITABLE_MEMO_MAX = 64


def memo(w, key, make):
    """make(), remembered per read-only array that w is a view of (and w's
    place in it and `key`), or per small writable one while its bytes stay
    the same; computed every time for larger writable arrays."""
    owner = root(w)
    writable = owner.flags.writeable
    if writable and owner.nbytes > WRITABLE_MEMO_BYTES:
        return make()
    table = WRITABLE_MEMO if writable else MEMO
    entry = table.get(id(owner))
    if entry is None or entry[0]() is not owner:
        if writable and len(table) >= WRITABLE_MEMO_MAX:
            table.clear()
        # (the owner's address kept: reading an array's costs ~2 us; a
        # writable owner's bytes, as last seen)
        entry = table[id(owner)] = (weakref.ref(owner), {}, owner.ctypes.data, [None])
        weakref.finalize(owner, table.pop, id(owner), None)
    if writable:
        data = owner.tobytes()
        if entry[3][0] != data:  # written since: nothing made before holds
            entry[1].clear()
            entry[3][0] = data
    k = (key, 0 if w is owner else w.ctypes.data - entry[2], w.shape, w.strides, w.dtype)
    value = entry[1].get(k)
    if value is None:
        value = entry[1][k] = make()
    return value


class RunPool:
    """Free buffers kept from one run (a Model's batch) to the next: inside
    `active()` the pool is the thread's (in `local`, which the allocation
    helpers read); free buffers a run neither took nor gave back are dropped
    at its end, so the pool never holds more than one run's working set.
    Subclasses keep `_free` (key -> [buffers]) and record in `_used` each
    free buffer they lend or take back."""

    def __init__(self, local):
        self._local = local
        self._lock = threading.Lock()
        self._free = {}
        self._used = set()  # ids of free buffers taken or given in this run

    @contextlib.contextmanager
    def active(self):
        """Allocations inside take their buffers from this pool."""
        previous = getattr(self._local, "pool", None)
        self._local.pool = self
        self._used = set()
        try:
            yield self
        finally:
            self._local.pool = previous
            with self._lock:
                for key in list(self._free):
                    self._free[key] = [a for a in self._free[key] if id(a) in self._used]
                    if not self._free[key]:
                        del self._free[key]
                self._end_run()

    def _end_run(self):
        """Called at the end of a run, under the lock."""


class Pool(RunPool):
    """Host buffers by byte size. `take` lends the smallest free buffer of
    at least the size asked for and at most twice it (or a new one); `give`
    takes back a lent buffer that nothing reads any more."""

    def __init__(self):
        super().__init__(_active)  # self._free: nbytes -> [uint8 arrays]
        self._lent = weakref.WeakValueDictionary()  # id -> lent uint8 array

    def take(self, shape, dtype):
        """An array of shape and dtype starting at a multiple of ALIGN
        bytes (a cache line): a channel slice of a Concatenate's buffer
        then writes whole lines (the U-Net's 16 of 32 channels: one line
        per pixel), and no vector store straddles two lines."""
        dtype = np.dtype(dtype)
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(map(int, shape))
        nbytes = math.prod(shape) * dtype.itemsize  # (np.prod: ~10 us a call)
        with self._lock:
            fits = [n for n in self._free if nbytes <= n - ALIGN <= 2 * nbytes]
            if fits:
                n = min(fits)
                raw = self._free[n].pop()
                if not self._free[n]:
                    del self._free[n]
            else:
                raw = np.empty(nbytes + ALIGN, np.uint8)
            self._lent[id(raw)] = raw
        start = -raw.ctypes.data % ALIGN
        return raw[start:start + nbytes].view(dtype).reshape(shape)

    def give(self, a):
        """Back to the pool if `a` is a buffer this pool lent (else nothing)."""
        with self._lock:
            if self._lent.get(id(a)) is a:
                del self._lent[id(a)]
                self._free.setdefault(a.nbytes, []).append(a)
                self._used.add(id(a))

    def free_bytes(self):
        """Usable bytes of the free buffers."""
        with self._lock:
            return sum(a.nbytes - ALIGN for lst in self._free.values() for a in lst)
