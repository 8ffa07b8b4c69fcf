"""A Model's conv layers write their outputs straight into the channels of
a following Concatenate (Model._plan_concat_slots): the same bits as the
separate concatenation, whatever else reads those outputs. No Keras here:
the models are built from fastdeconv.layers with random weights."""

import numpy as np
import pytest

import fastdeconv
from fastdeconv import layers as L
from fastdeconv.backends import cpu, cpu_layers
from fastdeconv.layers.model import Model


def _randomise(model, rng):
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in ws])
    return model


def _unet_2d():
    """Skips as in the 3-D U-Net, plus every kind of input a slot may meet:
    a conv output that is also pooled and passed through an activation, a
    non-conv input (copied into its channels), one tensor twice, a conv with
    softmax (computed, then copied), a channels-first conv (never a slot)."""
    inp = L.Input((12, 10, 3))
    e = L.Conv2D(8, 3, padding="same", name="enc")(inp)
    e = L.BatchNormalization(name="bn")(e)
    e = L.Activation("relu", name="relu")(e)
    d = L.MaxPooling2D(2, name="down")(e)
    b = L.Conv2D(16, 3, padding="same", activation="relu", name="bottom")(d)
    u = L.Conv2DTranspose(8, 2, strides=2, name="up")(b)
    s = L.Concatenate(name="skip")([u, e])
    c = L.Conv2D(5, 3, padding="same", name="dec")(s)
    # in place on skip's buffer only once e's readers are done
    s2 = L.Activation("sigmoid", name="reads_skip")(s)
    t = L.Activation("tanh", name="also_reads_e")(e)
    sm = L.Conv2D(3, 1, activation="softmax", name="soft")(c)
    cf = L.Conv2D(4, 1, data_format="channels_first", name="cf")(L.Reshape((5, 12, 10))(c))
    cf = L.Reshape((12, 10, 4))(cf)
    twice = L.Concatenate(name="twice")([c, c, s2, t, sm, cf])
    out = L.Conv2D(6, 3, padding="same", name="head")(twice)
    return Model(inp, [out, d])


def _without_slots(monkeypatch):
    monkeypatch.setattr(Model, "_plan_concat_slots", lambda self, fused: {})


def test_slots_planned_for_conv_inputs_only():
    model = _unet_2d()
    slots = model._plan_concat_slots(model._fused)
    named = {next(n for n in model._order if id(n) == k).layer.name: (cat.layer.name, c0, c1)
             for k, (cat, c0, c1) in slots.items()}
    # "dec" feeds "twice" twice (never a slot); "cf" is channels-first
    assert named == {"up": ("skip", 0, 8), "enc": ("skip", 8, 16), "soft": ("twice", 34, 37)}


@pytest.mark.parametrize("batch", [1, 3])
def test_slots_give_the_same_bits(batch, rng, monkeypatch):
    model = _randomise(_unet_2d(), rng)
    x = rng.standard_normal((batch, 12, 10, 3)).astype(np.float32)
    got = model.predict(x, batch_size=2)
    again = model.predict(x, batch_size=2)  # buffers reused from the first run
    _without_slots(monkeypatch)
    model._slots.clear()
    want = model.predict(x, batch_size=2)
    for g, a, w in zip(got, again, want):
        np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(a, w)
    ref = model.predict(x, backend="reference")
    for g, r in zip(got, ref):
        assert np.abs(g - r).max() <= 2e-6 * np.abs(r).max()


def test_unet3d_skips_are_written_in_place(rng):
    """The 3-D U-Net's two Concatenates get both inputs from conv layers:
    no concatenation copy runs."""
    inp = L.Input((16, 16, 16, 1))
    e1 = L.Conv3D(4, 3, padding="same", activation="relu")(inp)
    e2 = L.Conv3D(8, 3, padding="same", activation="relu")(L.MaxPooling3D(2)(e1))
    u1 = L.Conv3DTranspose(4, 2, strides=2)(e2)
    d1 = L.Conv3D(2, 3, padding="same")(L.Concatenate()([u1, e1]))
    model = _randomise(Model(inp, d1), rng)
    calls = []
    real = cpu_layers.concat_last
    cpu_layers.concat_last = lambda xs: calls.append(xs) or real(xs)
    try:
        x = rng.standard_normal((2, 16, 16, 16, 1)).astype(np.float32)
        y = model.predict(x)
    finally:
        cpu_layers.concat_last = real
    assert not calls
    ref = model.predict(x, backend="reference")
    assert np.abs(y - ref).max() <= 2e-6 * np.abs(ref).max()


def test_conv_writes_a_channel_slice(rng):
    """backends.cpu.forward / transpose with out= a channel slice: the
    channels around it are untouched; a view they cannot write (not a
    channel slice) gets a copy of the result."""
    x = rng.standard_normal((2, 3, 5, 7, 4)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 4, 6)).astype(np.float32)
    want = fastdeconv.conv3d(x, w, [1] * 5, "SAME")
    buf = np.full((2, 3, 5, 7, 11), 7.0, np.float32)
    got = cpu.forward(x, w, (3, 5, 7), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1, False, out=buf[..., 2:8])
    assert got.base is not None
    np.testing.assert_array_equal(buf[..., 2:8], want)
    assert (buf[..., :2] == 7).all() and (buf[..., 8:] == 7).all()
    strided = np.full((2, 3, 5, 14, 6), 7.0, np.float32)[:, :, :, ::2]  # pixels 2 apart, not a slice: copied
    cpu.forward(x, w, (3, 5, 7), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1, False, out=strided)
    np.testing.assert_array_equal(strided, want)
    wt = rng.standard_normal((2, 2, 2, 6, 4)).astype(np.float32)
    want_t = fastdeconv.conv3d_transpose(x, wt, (2, 6, 10, 14, 6), [1, 2, 2, 2, 1], "SAME")
    buf = np.full((2, 6, 10, 14, 9), 7.0, np.float32)
    cpu.transpose(x, wt, (6, 10, 14), (2, 2, 2), (1, 1, 1), (0, 0, 0), False, out=buf[..., 3:])
    np.testing.assert_array_equal(buf[..., 3:], want_t)
    assert (buf[..., :3] == 7).all()


@pytest.mark.parametrize("channels", [3, 8, 13])
def test_max_pooling_reads_a_channel_slice(channels, rng):
    """cpu_layers.pool on buf[..., c0:c1] reads it in place: the same as on
    a contiguous copy."""
    buf = rng.standard_normal((2, 6, 5, 7, channels + 5)).astype(np.float32)
    view = buf[..., 2:2 + channels]
    assert cpu_layers.pixel_stride(view) == channels + 5
    got = cpu_layers.pool(view, (3, 2, 3), (2, 3, 3), (2, 2, 2), (0, 0, 0), False, True)
    want = cpu_layers.pool(np.ascontiguousarray(view), (3, 2, 3), (2, 3, 3), (2, 2, 2), (0, 0, 0), False, True)
    np.testing.assert_array_equal(got, want)
