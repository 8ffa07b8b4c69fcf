"""Run by test_cache_load.py: save `count` entries of its own into one
kernel cache index shared with other such processes, all starting
together, through fastdeconv._jit.ProcessSafeCacheFile.

    python _cache_writer.py CACHE_DIR WRITER COUNT GO_FILE
"""

import os
import sys
import time

from fastdeconv._jit import ProcessSafeCacheFile

cache_dir, writer, count, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cache = ProcessSafeCacheFile(cache_path=cache_dir, filename_base="kernel-1.py311", source_stamp=("stamp", 1))
while not os.path.exists(go):
    time.sleep(0.001)
for i in range(count):
    cache.save(("key", writer, i), ("data", writer, i))
