"""The source-example networks, saved by Keras in both formats, loaded by
fastdeconv and compared with Keras' own model(x) (float32; err =
max|ours - keras| / max|keras|) and, as the SPEC's accuracy rule asks,
with the float64 reference: ours no further from it than Keras' (or 2e-6)."""

import numpy as np
import pytest

import fastdeconv
from conftest import FORMATS
from keras_models import rel_err

# name: (builder and arguments, batch, tolerance)
NETWORKS = {
    # VGG16 encoder (Conv2D + MaxPooling2D) and mirrored decoder (UpSampling2D +
    # Conv2DTranspose) at 1/8 of the channel widths, 224x224x3 in and out.
    "vgg_encoder_decoder_w8": (("vgg_encoder_decoder", 8), 2, 1e-5),
    # The full-width VGG decoder: 7x7x512 -> 224x224x3.
    "vgg_decoder_full": (("vgg_decoder", 1), 1, 1e-5),
    # conv3d -> max_pool3d -> conv3d_transpose at 512 channels, [N,2,7,7,512] back to itself.
    "conv3d_block_512": (("conv3d_pool_deconv", 512), 2, 1e-5),
    # Conv3DTranspose chain [N,2,7,7,64] -> [N,16,112,112,1].
    "c3t_chain": (("c3t_chain",), 2, 1e-5),
    # 3-D U-Net, two levels, BatchNormalization, Concatenate skips.
    "unet3d_32": (("unet3d", 32, (8, 16, 32)), 2, 1e-5),
}
SHAPES = {
    "vgg_encoder_decoder_w8": (2, 224, 224, 3),
    "vgg_decoder_full": (1, 224, 224, 3),
    "conv3d_block_512": (2, 2, 7, 7, 512),
    "c3t_chain": (2, 16, 112, 112, 1),
    "unet3d_32": (2, 32, 32, 32, 2),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", NETWORKS)
def test_network_matches_keras(name, fmt, saved):
    (builder, *args), batch, tol = NETWORKS[name]
    s = saved(builder, *args)
    model = fastdeconv.load_keras(s.paths[fmt])
    got = model.predict(s.input(batch), batch_size=batch)
    expected = s.expected(batch)
    assert got.shape == expected.shape == SHAPES[name]
    assert got.dtype == np.float32
    assert rel_err(got, expected) <= tol


@pytest.mark.parametrize("name", NETWORKS)
def test_network_as_accurate_as_keras(name, saved):
    """The whole network against the float64 reference backend: fastdeconv's
    float32 result no further from it than Keras' own (or 2e-6)."""
    (builder, *args), batch, _ = NETWORKS[name]
    s = saved(builder, *args)
    model = fastdeconv.load_keras(s.paths["keras"])
    x = s.input(batch)
    ref = model.predict(x.astype(np.float64), batch_size=batch, backend="reference", dtype=np.float64)
    ours = model.predict(x, batch_size=batch)
    assert rel_err(ours, ref) <= max(rel_err(s.expected(batch), ref), 2e-6)


@pytest.mark.parametrize("name", NETWORKS)
def test_shapes_and_parameter_counts_match_keras(name, saved):
    (builder, *args), _, _ = NETWORKS[name]
    s = saved(builder, *args)
    model = fastdeconv.load_keras(s.paths["keras"])
    km = s.keras_model
    assert model.count_params() == km.count_params()
    assert [layer.name for layer in model.layers] == [layer.name for layer in km.layers]
    for ours, theirs in zip(model.layers, km.layers):
        assert ours.count_params() == theirs.count_params(), ours.name
        assert tuple(ours.output_shape) == tuple(theirs.output.shape), ours.name
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            np.testing.assert_array_equal(a, b)
    text = model.summary(print_fn=None)
    assert f"Total params: {km.count_params():,}" in text


def test_predict_streams_batches(saved):
    """Batch by batch gives what one batch gives (a remainder batch too)."""
    s = saved("unet3d", 32, (8, 16, 32))
    model = fastdeconv.load_keras(s.paths["h5"])
    x = s.input(3, seed=1)
    whole = model.predict(x, batch_size=3)
    for batch_size in (1, 2):
        np.testing.assert_allclose(model.predict(x, batch_size=batch_size), whole, rtol=0, atol=1e-6)
    assert rel_err(whole, np.asarray(s.keras_model(x))) <= 1e-5


def test_fused_epilogue_matches_separate_layers(saved):
    """Conv -> BatchNormalization -> ReLU run as one pass agrees with the three
    layers run one by one."""
    s = saved("unet3d", 32, (8, 16, 32))
    model = fastdeconv.load_keras(s.paths["keras"])
    assert len(model._fused) == 10
    x = s.input(1)
    fused = model.predict(x)
    model.fuse = False
    separate = model.predict(x)
    assert rel_err(fused, separate) <= 1e-6
