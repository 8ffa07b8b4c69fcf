"""Tunables of the CUDA backend, read at every call (never copied at import).

Tests shrink them (e.g. 4 threads per block, 2 blocks) to run multi-block,
multi-tile launches on tiny inputs under the CUDA simulator; results do not
depend on any of them (see `kernels`: every output element is summed by one
thread in a fixed order), only speed does.
"""

# Threads per block of the convolution kernel. The block is a THREADS_M x
# THREADS_N grid of threads with THREADS_N = min(MAX_THREADS_N, what the
# output channels of one group need) and THREADS_M = THREADS_PER_BLOCK // THREADS_N.
THREADS_PER_BLOCK = 256
MAX_THREADS_N = 16
# Outputs per thread (a REG_M x REG_N register tile): the block's tile is
# (THREADS_M * REG_M) output positions x (THREADS_N * REG_N) output channels.
REG_M = 4
REG_N = 4
# Larger register tiles, REG_M and REG_N each times BIG_TILE_SCALE, for a
# problem that still has at least BIG_TILE_MIN_TILES tiles with them: half
# the shared-memory loads per multiply-add, but 4x fewer blocks to spread
# over the SMs (about 2 waves of 256-thread blocks on a 132-SM H100/H200).
BIG_TILE_SCALE = 2
BIG_TILE_MIN_TILES = 512
# Reduction slice staged in shared memory per step (taps x input channels).
TILE_K = 16
# Static shared memory per block the tiles may use; REG_M, then TILE_K are
# halved until the tiles fit.
SHARED_BYTES = 40 * 1024
# Upper bound on the grid; blocks loop over tiles (grid-stride), so any
# value >= 1 gives the same result.
MAX_BLOCKS = 65535
# Threads per block and grid bound of the elementwise kernels (fill, cast).
ELEMENTWISE_THREADS = 256
ELEMENTWISE_MAX_BLOCKS = 4096
