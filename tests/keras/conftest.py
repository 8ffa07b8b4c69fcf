"""Fixtures for the Keras tests: each network is built in Keras once per
session with seeded random weights, saved in both formats, and its Keras
output on a seeded input computed once."""

import zlib

import numpy as np
import pytest

import keras_models as KM

FORMATS = ("keras", "h5")


class Saved:
    def __init__(self, keras_model, paths):
        self.keras_model, self.paths = keras_model, paths
        self._outputs = {}

    def input(self, batch, seed=0):
        rng = np.random.default_rng(seed)
        shape = (batch,) + tuple(self.keras_model.input_shape[1:])
        return rng.standard_normal(shape).astype(np.float32)

    def expected(self, batch, seed=0):
        """Keras' own model(x) on `input(batch, seed)`."""
        key = (batch, seed)
        if key not in self._outputs:
            self._outputs[key] = np.asarray(self.keras_model(self.input(batch, seed)))
        return self._outputs[key]


@pytest.fixture(scope="session")
def saved(tmp_path_factory):
    """saved(builder, *args) -> Saved: the Keras model from
    keras_models.<builder>(*args), saved as model.keras and model.h5."""
    cache = {}

    def get(builder, *args):
        key = (builder, args)
        if key not in cache:
            # a seed of the network's own: its weights do not depend on which
            # tests ran before
            km = KM.randomize(getattr(KM, builder)(*args), seed=zlib.crc32(repr(key).encode()))
            folder = tmp_path_factory.mktemp(builder)
            paths = {fmt: folder / f"model.{fmt}" for fmt in FORMATS}
            for path in paths.values():
                km.save(path)
            cache[key] = Saved(km, paths)
        return cache[key]

    return get


def pytest_configure(config):
    # Keras converts TF tensors with np.array(tensor), which NumPy 2 warns about.
    config.addinivalue_line("filterwarnings",
                            "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
