"""Named benchmark cases, shared by the benchmark scripts and asv.

Append-only: a case's name always means the same computation, so timings
stay comparable across commits.
"""

from dataclasses import dataclass, field

import numpy as np

from . import _args


@dataclass(frozen=True)
class Case:
    name: str
    op: str  # a fastdeconv / tf.nn function name
    input_shape: tuple
    filter_shape: tuple
    strides: object  # as tf.nn takes it (conv3d: a length-5 list)
    padding: object = "SAME"
    output_shape: tuple = None  # transposes only
    data_format: str = None
    dilations: object = None
    tags: tuple = field(default=())

    @property
    def transpose(self):
        return self.op.endswith("_transpose")

    @property
    def rank(self):
        return len(self.filter_shape) - 2

    def kwargs(self):
        kw = {}
        if self.data_format:
            kw["data_format"] = self.data_format
        if self.dilations is not None:
            kw["dilations"] = self.dilations
        return kw

    def args(self, x, w):
        """Positional arguments of the tf.nn-style call."""
        if self.transpose:
            return (x, w, list(self.output_shape), self.strides, self.padding)
        return (x, w, self.strides, self.padding)

    def arrays(self, dtype=np.float32, seed=0):
        """Seeded inputs; filters scaled by 1/sqrt(fan-in) so outputs are O(1)."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.input_shape).astype(dtype)
        fan_in = int(np.prod(self.filter_shape[:-2])) * self.filter_shape[-1 if self.transpose else -2]
        w = (rng.standard_normal(self.filter_shape) / np.sqrt(max(fan_in, 1))).astype(dtype)
        return x, w

    def plan(self):
        fmt = self.data_format or {1: "NWC", 2: "NHWC", 3: "NDHWC"}[self.rank]
        if self.transpose:
            return _args.transpose_plan(self.op, self.rank, self.input_shape, self.filter_shape, self.output_shape,
                                        self.strides, self.padding, fmt, self.dilations)
        return _args.forward_plan(self.op, self.rank, self.input_shape, self.filter_shape, self.strides,
                                  self.padding, fmt, self.dilations)

    @property
    def flops(self):
        """2 x multiply-adds of the dense convolution."""
        return 2 * self.plan().macs


CASES = (
    # Source examples: a Conv3DTranspose decoder chain from [2,2,7,7,64] to [2,16,112,112,1].
    Case("src_c3t_2x2x7x7x64", "conv3d_transpose", (2, 2, 7, 7, 64), (3, 3, 3, 32, 64), 2,
         output_shape=(2, 4, 14, 14, 32), tags=("source",)),
    Case("src_c3t_chain2", "conv3d_transpose", (2, 4, 14, 14, 32), (3, 3, 3, 16, 32), 2,
         output_shape=(2, 8, 28, 28, 16), tags=("source",)),
    Case("src_c3t_chain3", "conv3d_transpose", (2, 8, 28, 28, 16), (3, 3, 3, 8, 16), 2,
         output_shape=(2, 16, 56, 56, 8), tags=("source",)),
    Case("src_c3t_chain4", "conv3d_transpose", (2, 16, 56, 56, 8), (1, 3, 3, 1, 8), (1, 2, 2),
         output_shape=(2, 16, 112, 112, 1), tags=("source",)),
    Case("src_c2t_3x3x1_to_6", "conv2d_transpose", (1, 3, 3, 1), (2, 2, 3, 1), 2,
         output_shape=(1, 6, 6, 3), tags=("source",)),
    Case("src_c2t_64x3_to_128x256", "conv2d_transpose", (1, 64, 64, 3), (3, 3, 256, 3), 2,
         output_shape=(1, 128, 128, 256), tags=("source",)),
    Case("src_c2t_64x3_to_130x256_valid", "conv2d_transpose", (1, 64, 64, 3), (3, 3, 256, 3), 2,
         padding="VALID", output_shape=(1, 130, 130, 256), tags=("source",)),
    Case("src_c3d_7x224x224x3_k133", "conv3d", (1, 7, 224, 224, 3), (1, 3, 3, 3, 64), (1, 1, 1, 1, 1),
         tags=("source",)),
    Case("src_c3d_7x224x224x3_k533_sd2", "conv3d", (1, 7, 224, 224, 3), (5, 3, 3, 3, 64), (1, 2, 1, 1, 1),
         tags=("source",)),
    Case("src_c3d_10x2x7x7x512", "conv3d", (10, 2, 7, 7, 512), (3, 3, 3, 512, 512), (1, 1, 1, 1, 1),
         tags=("source",)),
    Case("src_c3t_10x2x4x4x512", "conv3d_transpose", (10, 2, 4, 4, 512), (3, 3, 3, 512, 512), (1, 2, 2),
         output_shape=(10, 2, 7, 7, 512), tags=("source",)),
    Case("c3t_10x1x4x4x512_s2", "conv3d_transpose", (10, 1, 4, 4, 512), (3, 3, 3, 512, 512), 2,
         output_shape=(10, 2, 7, 7, 512), tags=("channel-heavy",)),
    # 3-D U-Net decoder upsampling.
    Case("unet_c3t_32c64_k2s2", "conv3d_transpose", (1, 32, 32, 32, 64), (2, 2, 2, 32, 64), 2,
         output_shape=(1, 64, 64, 64, 32), tags=("unet",)),
    Case("unet_c3t_32c64_k3s2", "conv3d_transpose", (1, 32, 32, 32, 64), (3, 3, 3, 32, 64), 2,
         output_shape=(1, 64, 64, 64, 32), tags=("unet",)),
    Case("unet_c3t_32c64_k2s2_ncdhw", "conv3d_transpose", (1, 64, 32, 32, 32), (2, 2, 2, 32, 64), 2,
         output_shape=(1, 32, 64, 64, 64), data_format="NCDHW", tags=("unet", "channels-first")),
    Case("unet_c3d_64c32_k3", "conv3d", (1, 64, 64, 64, 32), (3, 3, 3, 32, 32), (1, 1, 1, 1, 1),
         tags=("unet",)),
    Case("c3t_dilated2_16x32x32c32", "conv3d_transpose", (1, 16, 32, 32, 32), (3, 3, 3, 32, 32), 1,
         output_shape=(1, 16, 32, 32, 32), dilations=2, tags=("dilated",)),
    # VGG-style decoder.
    Case("vgg_c2t_4x14x14x512_k3s1", "conv2d_transpose", (4, 14, 14, 512), (3, 3, 512, 512), 1,
         output_shape=(4, 14, 14, 512), tags=("vgg",)),
    # 3-D U-Net at 64^3 with 16-32 channels (scripts/bench_models.py, benchmarks/MODELS.md).
    Case("unet_c3d_64c16_k3", "conv3d", (1, 64, 64, 64, 16), (3, 3, 3, 16, 16), (1, 1, 1, 1, 1),
         tags=("unet", "unet64")),
    Case("unet_c3t_32c32_to_64c16_k2s2", "conv3d_transpose", (1, 32, 32, 32, 32), (2, 2, 2, 16, 32), 2,
         output_shape=(1, 64, 64, 64, 16), tags=("unet", "unet64")),
    # Segmentation heads: the U-Net's 1x1x1 conv to 2 classes (before its
    # softmax), and a 1-class one (before a sigmoid).
    Case("unet_head_c3d_64c16_to2_k1", "conv3d", (1, 64, 64, 64, 16), (1, 1, 1, 16, 2), (1, 1, 1, 1, 1),
         tags=("unet", "unet64", "head")),
    Case("head_c3d_64c32_to1_k1", "conv3d", (1, 64, 64, 64, 32), (1, 1, 1, 32, 1), (1, 1, 1, 1, 1),
         tags=("head",)),
    # An image decoder's RGB head: the last upsampling of a DCGAN-style
    # generator, 64 channels to 3 (fastdeconv 0.88-0.92x TF before
    # benchmarks/NOTES.md section 69).
    Case("rgb_head_c2t_64x32c64_to3_k4s2", "conv2d_transpose", (64, 32, 32, 64), (4, 4, 3, 64), 2,
         output_shape=(64, 64, 64, 3), tags=("head",)),
)

BY_NAME = {case.name: case for case in CASES}

# Small calls, where the time per call is mostly each framework's own
# per-call work (scripts/bench_small_calls.py, asv's SmallCalls); kept out
# of CASES and its geometric mean. Append-only like CASES.
SMALL_CASES = (
    Case("small_c2d_8x8c4_to8", "conv2d", (1, 8, 8, 4), (3, 3, 4, 8), 1, tags=("small",)),
    Case("small_c2d_8x8c16_to32", "conv2d", (1, 8, 8, 16), (3, 3, 16, 32), 1, tags=("small",)),
    Case("small_c2d_8x8c64_to64", "conv2d", (1, 8, 8, 64), (3, 3, 64, 64), 1, tags=("small",)),
    Case("small_c2t_8x8c32_to16_s2", "conv2d_transpose", (1, 8, 8, 32), (3, 3, 16, 32), 2,
         output_shape=(1, 16, 16, 16), tags=("small",)),
    Case("small_c1d_64c8_to8", "conv1d", (1, 64, 8), (3, 8, 8), 1, tags=("small",)),
    Case("small_c3d_4c8_to16", "conv3d", (1, 4, 4, 4, 8), (3, 3, 3, 8, 16), (1, 1, 1, 1, 1), tags=("small",)),
    Case("small_c2d_nchw_16x16c8_to8", "conv2d", (1, 8, 16, 16), (3, 3, 8, 8), 1, data_format="NCHW",
         tags=("small", "channels-first")),
    Case("small_c3t_4c16_to8_k2s2", "conv3d_transpose", (1, 4, 4, 4, 16), (2, 2, 2, 8, 16), 2,
         output_shape=(1, 8, 8, 8, 8), tags=("small",)),
)

# The same calls on channels-last and channels-first input
# (scripts/bench_layouts.py, asv's Layouts), append-only like CASES:
# (name, op, channels-last input shape, filter shape, strides, channels-last output shape for transposes)
LAYOUT_CASES = [
    ("conv3d 32^3 x 32 -> 32 k3", "conv3d", (1, 32, 32, 32, 32), (3, 3, 3, 32, 32), 1, None),
    ("conv3d 64^3 x 16 -> 16 k3", "conv3d", (1, 64, 64, 64, 16), (3, 3, 3, 16, 16), 1, None),
    ("conv3d 32^3 x 64 -> 64 k3", "conv3d", (1, 32, 32, 32, 64), (3, 3, 3, 64, 64), 1, None),
    # rows that leave vectors along W part empty, or of one vector: bands from 16-32 channels (cpu.CF_BANDS_FILL_*)
    ("conv3d 16^3 x 32 -> 32 k3", "conv3d", (1, 16, 16, 16, 32), (3, 3, 3, 32, 32), 1, None),
    ("conv2d 8 x 24^2 x 32 -> 32 k3", "conv2d", (8, 24, 24, 32), (3, 3, 32, 32), 1, None),
    # a video network's first layer, 3 input channels (cpu_short: short_cl, short_cf; each channels-first
    # output row of 112 columns is a fraction of 128 lanes, each plane 98 whole blocks)
    ("conv3d 7 x 112^2 x 3 -> 64 1x3x3 (video stem)", "conv3d", (1, 7, 112, 112, 3), (1, 3, 3, 3, 64), 1, None),
    ("conv3d 16 x 64^2 x 1 -> 32 k3", "conv3d", (1, 16, 64, 64, 1), (3, 3, 3, 1, 32), 1, None),
    # a U-Net's segmentation head, 1x1x1 to 2 classes (cpu_pw: pointwise_cl, pointwise_cf)
    ("conv3d 64^3 x 16 -> 2 k1 (head)", "conv3d", (1, 64, 64, 64, 16), (1, 1, 1, 16, 2), 1, None),
    # a ResNet bottleneck's 1x1 expansion (cpu_pw.pointwise_cf: several blocks of output channels)
    ("conv2d 56^2 x 64 -> 256 k1 (bottleneck)", "conv2d", (1, 56, 56, 64), (1, 1, 64, 256), 1, None),
    # 3-D 1x1 layers read from memory: channels-first spans copied to scratch first on AMD Zen
    # (cpu.POINTWISE_CF_PACK), streaming stores but on Zen 1-3 (cpu.STREAM_STORES)
    ("conv3d 64^3 x 16 -> 32 k1", "conv3d", (1, 64, 64, 64, 16), (1, 1, 1, 16, 32), 1, None),
    ("conv3d 64^3 x 32 -> 32 k1", "conv3d", (1, 64, 64, 64, 32), (1, 1, 1, 32, 32), 1, None),
    # a MobileNet's 3x3 depthwise layer (cpu_dw: depthwise_cl, depthwise_cf)
    ("conv2d depthwise 56^2 x 144 k3", "conv2d", (1, 56, 56, 144), (3, 3, 1, 144), 1, None),
    ("conv3d_transpose 16^3 x 64 -> 32 k3 s2", "conv3d_transpose", (1, 16, 16, 16, 64), (3, 3, 3, 32, 64), 2,
     (1, 32, 32, 32, 32)),
    ("conv3d_transpose 32^3 x 64 -> 32 k2 s2", "conv3d_transpose", (1, 32, 32, 32, 64), (2, 2, 2, 32, 64), 2,
     (1, 64, 64, 64, 32)),
    # ... a level deeper: lines of 16 columns, half a 2-vector chunk (cpu_patch.cf_flat)
    ("conv3d_transpose 16^3 x 128 -> 64 k2 s2", "conv3d_transpose", (1, 16, 16, 16, 128), (2, 2, 2, 64, 128), 2,
     (1, 32, 32, 32, 64)),
    ("conv3d_transpose 16x32x32 x 32, dilation 2", "conv3d_transpose", (1, 16, 32, 32, 32), (3, 3, 3, 32, 32), 1,
     (1, 16, 32, 32, 32)),
    ("conv3d_transpose 1 out channel (chain)", "conv3d_transpose", (2, 16, 56, 56, 8), (1, 3, 3, 1, 8), (1, 2, 2),
     (2, 16, 112, 112, 1)),
    ("conv2d 224^2 x 64 -> 64 k3", "conv2d", (1, 224, 224, 64), (3, 3, 64, 64), 1, None),
    ("conv2d 56^2 x 256 -> 256 k3", "conv2d", (1, 56, 56, 256), (3, 3, 256, 256), 1, None),
    ("conv2d 4 x 14^2 x 512 -> 512 k3", "conv2d", (4, 14, 14, 512), (3, 3, 512, 512), 1, None),
    ("conv2d 112^2 x 128 -> 128 k3 s2", "conv2d", (1, 112, 112, 128), (3, 3, 128, 128), 2, None),
    ("conv2d 8 x 7^2 x 512 -> 512 k3", "conv2d", (8, 7, 7, 512), (3, 3, 512, 512), 1, None),
    ("conv3d 8^3 x 128 -> 128 k3", "conv3d", (1, 8, 8, 8, 128), (3, 3, 3, 128, 128), 1, None),
    ("conv2d_transpose 28^2 x 256 -> 128 k3 s2", "conv2d_transpose", (1, 28, 28, 256), (3, 3, 128, 256), 2,
     (1, 56, 56, 128)),
    # few input channels: channels-last gathers each block's taps into one run (cpu.GATHER)
    ("conv2d_transpose 64^2 x 3 -> 256 k3 s2", "conv2d_transpose", (1, 64, 64, 3), (3, 3, 256, 3), 2,
     (1, 128, 128, 256)),
    # a DCGAN generator's projection (PyTorch's ConvTranspose2d(100, 512, 4, 1, 0) on a 1 x 1 input; SAME
    # with stride 4 is the same call) and first upsamplings (ConvTranspose2d(k=4, s=2, p=1)), channels-first there
    ("conv2d_transpose 64 x 1^2 x 100 -> 512 k4 s4", "conv2d_transpose", (64, 1, 1, 100), (4, 4, 512, 100), 4,
     (64, 4, 4, 512)),
    ("conv2d_transpose 16 x 4^2 x 512 -> 256 k4 s2", "conv2d_transpose", (16, 4, 4, 512), (4, 4, 256, 512), 2,
     (16, 8, 8, 256)),
    ("conv2d_transpose 16 x 8^2 x 256 -> 128 k4 s2", "conv2d_transpose", (16, 8, 8, 256), (4, 4, 128, 256), 2,
     (16, 16, 16, 128)),
    ("conv2d_transpose 16 x 16^2 x 128 -> 64 k4 s2", "conv2d_transpose", (16, 16, 16, 128), (4, 4, 64, 128), 2,
     (16, 32, 32, 64)),
    # strided transposes of 64-128 channels on small images: each W phase fills at most one vector along W
    ("conv2d_transpose 8 x 8^2 x 128 -> 64 k4 s2", "conv2d_transpose", (8, 8, 8, 128), (4, 4, 64, 128), 2,
     (8, 16, 16, 64)),
    ("conv3d_transpose 8^3 x 128 -> 64 k3 s2", "conv3d_transpose", (1, 8, 8, 8, 128), (3, 3, 3, 64, 128), 2,
     (1, 16, 16, 16, 64)),
]


def layout_calls(case, rng):
    """(channels-last call, channels-first call) of a LAYOUT_CASES entry,
    float32, read-only filters (packed once, as a layer's weights are)."""
    _, op, xs, ws, strides, out = case
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    w.flags.writeable = False
    x_cf = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    import fastdeconv

    f = getattr(fastdeconv, op)
    cf = "NCDHW" if x.ndim == 5 else "NCHW"
    if out is None:
        return (lambda: f(x, w, strides, "SAME", backend="cpu"),
                lambda: f(x_cf, w, strides, "SAME", data_format=cf, backend="cpu"))
    out_cf = (out[0], out[-1]) + tuple(out[1:-1])
    return (lambda: f(x, w, out, strides, "SAME", backend="cpu"),
            lambda: f(x_cf, w, out_cf, strides, "SAME", data_format=cf, backend="cpu"))
