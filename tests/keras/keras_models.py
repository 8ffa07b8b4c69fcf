"""The networks of the source examples, built in Keras with random weights.

Only this module and conftest.py import Keras. Every builder takes a
width divisor so that most tests run small versions; weights are drawn
by `randomize` (kernels scaled by 1/sqrt(fan-in), so activations stay O(1)
through deep stacks; biases and BatchNormalization statistics non-trivial).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN kernels on by default only on CPUs with
# AVX-512 VNNI/BF16 or AMX; elsewhere its float32 convolutions are
# several times slower and refuse channels-first and dilated transposes.
# Compare with (and test against) TF at its best on every CPU.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers as K  # noqa: E402


def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        new = []
        names = [w.path.split("/")[-1] for w in layer.weights]
        for name, w in zip(names, layer.get_weights()):
            if name in ("kernel", "depthwise_kernel", "pointwise_kernel"):
                t = type(layer).__name__
                # fan-in: taps x input channels (transpose kernels are [..., out, in];
                # a depthwise kernel [..., channels, multiplier] sums over the taps only).
                fan_in = np.prod(w.shape[:-2]) * (w.shape[-1] if "Transpose" in t else w.shape[-2])
                if "Depthwise" in t or name == "depthwise_kernel":
                    fan_in = np.prod(w.shape[:-2])
                if w.ndim == 2:
                    fan_in = w.shape[0]
                v = rng.standard_normal(w.shape) * np.sqrt(2.0 / fan_in)
            elif name == "bias":
                v = rng.standard_normal(w.shape) * 0.1
            elif name == "gamma":
                v = rng.uniform(0.5, 1.5, w.shape)
            elif name == "beta":
                v = rng.standard_normal(w.shape) * 0.1
            elif name == "moving_mean":
                v = rng.standard_normal(w.shape) * 0.2
            elif name == "moving_variance":
                v = rng.uniform(0.5, 2.0, w.shape)
            elif name == "alpha":  # PReLU's slopes, either sign
                v = rng.uniform(-0.5, 0.5, w.shape)
            else:
                raise AssertionError(name)
            new.append(v.astype(np.float32))
        layer.set_weights(new)
    return model


def vgg_encoder_decoder(div=8, size=224):
    """VGG16's conv stack (Conv2D + MaxPooling2D, 224x224x3 -> 7x7x512 at
    full width) and a mirrored decoder (UpSampling2D + Conv2DTranspose, back
    to 224x224x3). Channel widths divided by `div`."""
    w = lambda c: max(c // div, 1)  # noqa: E731
    inp = keras.Input((size, size, 3), name="image")
    x = inp
    for block, (n, c) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], 1):
        for i in range(n):
            x = K.Conv2D(w(c), 3, padding="same", activation="relu", name=f"block{block}_conv{i + 1}")(x)
        x = K.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = vgg_decoder_layers(x, div)
    return keras.Model(inp, x, name="vgg_encoder_decoder")


def vgg_decoder_layers(x, div=1):
    w = lambda c: max(c // div, 1)  # noqa: E731
    for block, widths in enumerate([(512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64, 3)], 1):
        x = K.UpSampling2D(2, name=f"dec{block}_up")(x)
        for i, c in enumerate(widths):
            last = block == 5 and i == len(widths) - 1
            x = K.Conv2DTranspose(3 if last else w(c), 3, padding="same",
                                  activation="sigmoid" if last else "relu", name=f"dec{block}_deconv{i + 1}")(x)
    return x


def vgg_decoder(div=1):
    """The decoder alone: 7x7x512 (at full width) -> 224x224x3."""
    inp = keras.Input((7, 7, max(512 // div, 1)), name="code")
    return keras.Model(inp, vgg_decoder_layers(inp, div), name="vgg_decoder")


def conv3d_pool_deconv(channels=512):
    """conv3d -> max_pool3d -> conv3d_transpose: [N,2,7,7,C] -> [N,2,4,4,C] -> [N,2,7,7,C]."""
    inp = keras.Input((2, 7, 7, channels), name="volume")
    x = K.Conv3D(channels, 3, padding="same", activation="relu", name="conv3d")(inp)
    x = K.MaxPooling3D((1, 2, 2), padding="same", name="max_pool3d")(x)
    x = K.Conv3DTranspose(channels, 3, strides=(1, 2, 2), padding="same", output_padding=(0, 0, 0),
                          name="conv3d_transpose")(x)
    return keras.Model(inp, x, name="conv3d_block")


def c3t_chain():
    """Conv3DTranspose upsampling chain [N,2,7,7,64] -> [N,16,112,112,1]."""
    inp = keras.Input((2, 7, 7, 64), name="code")
    x = K.Conv3DTranspose(32, 3, strides=2, padding="same", activation="relu")(inp)
    x = K.Conv3DTranspose(16, 3, strides=2, padding="same", activation="relu")(x)
    x = K.Conv3DTranspose(8, 3, strides=2, padding="same", activation="relu")(x)
    x = K.Conv3DTranspose(1, (1, 3, 3), strides=(1, 2, 2), padding="same")(x)
    return keras.Model(inp, x, name="c3t_chain")


def unet3d(size=64, widths=(16, 32, 64), in_channels=1, classes=2):
    """A 3-D U-Net with two levels: (conv-BN-ReLU) x 2 blocks, MaxPooling3D
    down, Conv3DTranspose 2x2x2 stride 2 up, skip connections by
    Concatenate, a 1x1x1 softmax head."""

    def block(x, c, name):
        for i in range(2):
            x = K.Conv3D(c, 3, padding="same", name=f"{name}_conv{i + 1}")(x)
            x = K.BatchNormalization(name=f"{name}_bn{i + 1}")(x)
            x = K.Activation("relu", name=f"{name}_relu{i + 1}")(x)
        return x

    inp = keras.Input((size, size, size, in_channels), name="volume")
    e1 = block(inp, widths[0], "enc1")
    e2 = block(K.MaxPooling3D(2, name="down1")(e1), widths[1], "enc2")
    b = block(K.MaxPooling3D(2, name="down2")(e2), widths[2], "bottom")
    u2 = K.Conv3DTranspose(widths[1], 2, strides=2, name="up2")(b)
    d2 = block(K.Concatenate(name="skip2")([u2, e2]), widths[1], "dec2")
    u1 = K.Conv3DTranspose(widths[0], 2, strides=2, name="up1")(d2)
    d1 = block(K.Concatenate(name="skip1")([u1, e1]), widths[0], "dec1")
    out = K.Conv3D(classes, 1, activation="softmax", name="head")(d1)
    return keras.Model(inp, out, name="unet3d")


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


# --- small networks that between them use every supported layer and option ------------------

# Keras 3.15's TF backend adds a channels-first bias on the wrong axis when the
# last spatial dim equals the channel count (keras.ops.add takes the (1, C, 1,
# ..., 1) bias for a channels-last one and calls tf.nn.bias_add with NHWC), so
# no channels-first layer with a bias below has its last dim equal to its
# channels; test_keras_layers checks our (intended) result on such a shape.

def zoo_1d():
    inp = keras.Input((20, 6), name="seq")
    a = K.Conv1D(8, 3, padding="causal", dilation_rate=2, activation="tanh")(inp)
    b = K.MaxPooling1D(3, strides=2, padding="same")(a)
    c = K.AveragePooling1D(3, strides=2, padding="same")(a)
    d = K.Add()([b, c, b])
    e = K.UpSampling1D(2)(d)
    f = K.Conv1DTranspose(4, 3, strides=2, padding="valid", output_padding=1, activation="leaky_relu")(e)
    g = K.Conv1D(4, 5, strides=3, padding="valid", activation="elu", use_bias=False)(f)
    h = K.Conv1D(6, 3, padding="same", data_format="channels_first", activation="softplus")(g)
    i = K.MaxPooling1D(2, data_format="channels_first")(h)
    j = K.AveragePooling1D(2, padding="valid")(i)
    k = K.Conv1DTranspose(5, 4, strides=3, padding="same", data_format="channels_first")(j)
    x = K.Dropout(0.3)(k)
    x = K.Flatten()(x)
    x = K.Dense(10, activation="swish")(x)
    x = K.LeakyReLU(negative_slope=0.1)(x)
    x = K.ReLU()(x)
    x = K.Dense(3, activation="softmax")(x)
    return keras.Model(inp, x, name="zoo_1d")


def zoo_2d():
    """channels_first throughout the conv part, grouped conv, BatchNormalization on axis 1."""
    cf = "channels_first"
    inp = keras.Input((4, 16, 13), name="image")
    a = K.Conv2D(8, 3, strides=2, padding="same", data_format=cf, activation="relu")(inp)
    a = K.BatchNormalization(axis=1)(a)
    b = K.Conv2D(8, (3, 1), groups=2, padding="same", data_format=cf)(a)
    b = K.Activation("relu")(b)
    c = K.MaxPooling2D((2, 3), strides=(2, 1), padding="same", data_format=cf)(b)
    d = K.UpSampling2D((2, 1), data_format=cf)(c)
    e = K.Concatenate(axis=1)([d, a])
    f = K.Conv2DTranspose(6, (3, 2), strides=(2, 3), padding="same", output_padding=(1, 1), data_format=cf,
                          activation="sigmoid")(e)
    g = K.AveragePooling2D(3, strides=2, padding="same", data_format=cf)(f)
    h = K.Conv2D(5, 2, dilation_rate=(2, 1), padding="valid", data_format=cf, activation="linear")(g)
    h = K.BatchNormalization(axis=1, center=False)(h)
    x = K.Flatten(data_format=cf)(h)
    x = K.Reshape((5, -1))(x)
    x = K.Dense(4)(x)
    x = K.BatchNormalization(scale=False)(x)
    x = K.Activation("tanh")(x)
    return keras.Model(inp, x, name="zoo_2d")


def zoo_3d():
    inp = keras.Input((9, 10, 11, 2), name="volume")
    a = K.Conv3D(4, (3, 2, 3), dilation_rate=(2, 1, 1), padding="valid", activation="relu")(inp)
    b = K.AveragePooling3D(2, padding="same")(a)
    c = K.UpSampling3D((1, 2, 2))(b)
    d = K.Conv3DTranspose(4, 3, strides=2, padding="valid", activation="silu")(c)
    e = K.MaxPooling3D((2, 2, 3), strides=(2, 1, 2), padding="valid")(d)
    f = K.Conv3D(3, 1, data_format="channels_first", activation="relu")(e)
    g = K.MaxPooling3D(2, padding="same", data_format="channels_first")(f)
    h = K.AveragePooling3D((1, 2, 2), padding="valid", data_format="channels_first")(g)
    i = K.UpSampling3D(2, data_format="channels_first")(h)
    j = K.Conv3DTranspose(2, (3, 3, 1), strides=(1, 2, 2), padding="same", output_padding=(0, 1, 1),
                          data_format="channels_first")(i)
    k = K.Conv3D(4, 3, strides=(2, 1, 2), padding="same")(j)
    k = K.BatchNormalization()(k)
    out = K.Activation("softmax")(k)
    return keras.Model(inp, out, name="zoo_3d")


def sequential_2d():
    return keras.Sequential([
        keras.Input((12, 12, 3)),
        K.Conv2D(6, 3, activation="relu"),
        K.MaxPooling2D(),
        K.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
        K.BatchNormalization(),
        K.UpSampling2D(),
        K.AveragePooling2D(2),
        K.Flatten(),
        K.Dropout(0.5),
        K.Dense(7, activation="sigmoid"),
    ], name="sequential_2d")


def two_inputs_shared():
    """Two inputs through one shared Conv2D (a layer called twice), two outputs."""
    a, b = keras.Input((9, 9, 3), name="left"), keras.Input((9, 9, 3), name="right")
    shared = K.Conv2D(4, 3, padding="same", activation="relu", name="shared")
    ya, yb = shared(a), shared(b)
    merged = K.Conv2DTranspose(2, 3, strides=2, name="up")(K.Add(name="sum")([ya, yb]))
    return keras.Model([a, b], [merged, K.Concatenate(name="cat")([ya, yb])], name="two_inputs")


def zoo_reshaping():
    """Zero padding and cropping (1-3 D, both formats), the global poolings,
    bilinear upsampling and Resizing (both formats), the Softmax layer on two axes, the elementwise merges and the layers that
    are the identity at inference; branches joined as vectors."""
    cf = "channels_first"
    inp = keras.Input((6, 7, 8, 3), name="volume")
    a = K.Conv3D(4, 3, padding="same", activation="relu")(inp)
    p = K.ZeroPadding3D(((1, 0), (0, 2), (1, 1)))(a)
    c = K.Cropping3D(((1, 1), (0, 2), (2, 1)))(p)
    c = K.SpatialDropout3D(0.2)(c)
    v1 = K.GlobalAveragePooling3D()(c)
    d = K.ZeroPadding3D(1, data_format=cf)(c)
    d = K.Cropping3D((1, 0, 2), data_format=cf)(d)
    v2 = K.Flatten()(K.GlobalMaxPooling3D(data_format=cf, keepdims=True)(d))
    r2 = K.Reshape((35, 7, 4))(c)
    e = K.Cropping2D(((2, 1), (0, 3)))(K.ZeroPadding2D((1, 2))(r2))
    e = K.SpatialDropout2D(0.1)(e)
    v3 = K.GlobalMaxPooling2D()(e)
    f = K.ZeroPadding2D(((0, 1), (2, 0)), data_format=cf)(r2)
    f = K.Cropping2D((3, 1), data_format=cf)(f)
    v4 = K.GlobalAveragePooling2D(data_format=cf, keepdims=True)(f)
    v4 = K.Reshape((-1,))(v4)
    r1 = K.Reshape((245, 4))(c)
    g = K.Cropping1D((2, 5))(K.ZeroPadding1D(3)(r1))
    g = K.SpatialDropout1D(0.3)(g)
    v5 = K.Flatten()(K.GlobalAveragePooling1D(keepdims=True)(g))
    h = K.ZeroPadding1D((1, 2), data_format=cf)(r1)
    v6 = K.GlobalMaxPooling1D(data_format=cf)(h)
    s1 = K.Softmax()(r2)
    s2 = K.Softmax(axis=1)(r2)
    lin = K.Conv2D(4, 1)(r2)  # both signs: the maximum and minimum below pick from both sides
    m1 = K.Multiply()([s1, lin, r2])
    m = K.Subtract()([m1, K.GaussianNoise(0.5)(s2)])
    m = K.Average()([m, lin, K.GaussianDropout(0.2)(s1)])
    m = K.Maximum()([m, K.AlphaDropout(0.1)(m1)])
    m = K.Minimum()([m, K.ActivityRegularization(l1=0.01)(lin)])
    v7 = K.GlobalAveragePooling2D()(K.Identity()(m))
    up = K.UpSampling2D((2, 3), interpolation="bilinear")(r2)
    v8 = K.GlobalMaxPooling2D()(K.Conv2D(3, 3)(up))
    up = K.UpSampling2D(3, data_format=cf, interpolation="bilinear")(f)
    v9 = K.Flatten()(K.Conv2D(2, 3, data_format=cf)(up))
    v10 = K.GlobalMaxPooling2D()(K.Resizing(9, 5)(r2))
    v11 = K.Flatten()(K.Resizing(40, 3, interpolation="nearest", data_format=cf)(f))
    x = K.Concatenate()([v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11])
    return keras.Model(inp, K.Dense(6)(x), name="zoo_reshaping")


def zoo_separable():
    """Depthwise and depthwise-separable convolutions, 1-D and 2-D: depth
    multipliers, strides, dilation, both paddings, with BatchNormalization
    and activations after them (fused into the conv on cpu); Rescaling at
    the input, a Permute, an ELU layer; Layer and Group normalization on
    trailing and other axes; MobileNet's ReLU(6.0), PReLU per channel and
    per element, and the smooth and piecewise activations (gelu, selu,
    mish, hard_silu, hard_sigmoid, softsign, exponential)."""
    inp = keras.Input((12, 10, 4), name="image")
    scaled = K.Rescaling(1 / 3, offset=-0.25)(inp)
    a = K.SeparableConv2D(6, 3, depth_multiplier=2, padding="same")(scaled)
    a = K.ReLU(6.0)(K.BatchNormalization()(a))
    a = K.Permute((2, 1, 3))(a)
    a = K.GroupNormalization(groups=3, epsilon=1e-4)(a)
    a = K.PReLU(shared_axes=[1, 2])(a)
    b = K.DepthwiseConv2D(3, strides=2, depth_multiplier=3, activation="tanh")(a)
    b = K.Activation("exponential")(b)
    b = K.BatchNormalization()(b)
    b = K.LayerNormalization()(b)
    c = K.DepthwiseConv2D((2, 3), dilation_rate=(2, 1), padding="same", use_bias=False, activation="gelu")(b)
    c = K.Permute((2, 1, 3))(K.ELU(alpha=0.5)(c))
    d = K.SeparableConv2D(5, (3, 2), strides=(1, 2), dilation_rate=1, use_bias=False, activation="hard_silu")(c)
    d = K.LayerNormalization(axis=[1, 2, 3], center=False)(d)
    d = K.LayerNormalization(axis=1, scale=False)(d)  # not the trailing axes
    e = K.Activation("selu")(K.Reshape((-1, 5))(d))
    e = K.GroupNormalization(groups=3, axis=1)(e)  # channels first
    f = K.SeparableConv1D(7, 3, strides=2, padding="same", depth_multiplier=2, activation="elu")(e)
    f = K.PReLU()(f)
    g = K.DepthwiseConv1D(2, dilation_rate=2, depth_multiplier=2, activation="mish")(f)
    g = K.BatchNormalization()(g)
    x = K.Flatten()(K.LeakyReLU(0.2)(g))
    x = K.Dense(6, activation="hard_sigmoid")(x)
    return keras.Model(inp, K.Dense(4, activation="softsign")(x), name="zoo_separable")
