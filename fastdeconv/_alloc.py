"""Output arrays of the cpu kernels: np.empty, or, while a Model runs, a
buffer that an earlier layer has finished with.

Why: a 64^3 x 16 float32 activation is 16 MB. Fresh arrays of that size are
fresh pages: a U-Net predict took ~3,000 page faults and 20-40 ms of system
time each call, for memory the previous layer had just released. A Model
keeps the buffers its layers release in a `Pool` and hands them out again
(same byte size), as TensorFlow's allocator does; outside a Model nothing
changes.
"""

import contextlib
import threading
import weakref

import numpy as np

_active = threading.local()


def empty(shape, dtype):
    """np.empty(shape, dtype), from the running Model's pool if there is one."""
    pool = getattr(_active, "pool", None)
    if pool is None:
        return np.empty(shape, dtype)
    return pool.take(shape, dtype)


def root(a):
    """The array that owns a's memory."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


class Pool:
    """Free buffers by byte size. `take` lends the smallest free buffer of
    at least the size asked for and at most twice it (or a new one); `give`
    takes back a lent buffer that nothing reads any more. Buffers not taken
    during a whole run are dropped at its end, so the pool never holds more
    than one run's working set."""

    def __init__(self):
        self._lock = threading.Lock()
        self._free = {}  # nbytes -> [uint8 arrays]
        self._lent = weakref.WeakValueDictionary()  # id -> lent uint8 array
        self._used = set()  # ids of free buffers taken or given in this run

    def take(self, shape, dtype):
        dtype = np.dtype(dtype)
        shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        with self._lock:
            fits = [n for n in self._free if nbytes <= n <= 2 * nbytes]
            if fits:
                n = min(fits)
                raw = self._free[n].pop()
                if not self._free[n]:
                    del self._free[n]
            else:
                raw = np.empty(nbytes, np.uint8)
            self._lent[id(raw)] = raw
        return raw[:nbytes].view(dtype).reshape(shape)

    def give(self, a):
        """Back to the pool if `a` is a buffer this pool lent (else nothing)."""
        with self._lock:
            if self._lent.get(id(a)) is a:
                del self._lent[id(a)]
                self._free.setdefault(a.nbytes, []).append(a)
                self._used.add(id(a))

    @contextlib.contextmanager
    def active(self):
        """Kernels called inside take their outputs from this pool."""
        previous = getattr(_active, "pool", None)
        _active.pool = self
        self._used = set()
        try:
            yield self
        finally:
            _active.pool = previous
            with self._lock:
                for n in list(self._free):
                    self._free[n] = [a for a in self._free[n] if id(a) in self._used]
                    if not self._free[n]:
                        del self._free[n]

    def free_bytes(self):
        with self._lock:
            return sum(a.nbytes for lst in self._free.values() for a in lst)
