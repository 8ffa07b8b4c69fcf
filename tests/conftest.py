"""Shared fixtures: the backend list (the one place it is spelled), a seeded
RNG and the Hypothesis profile."""

import os
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Every backend the suite runs; tests take the `backend` fixture below.
BACKENDS = ["reference", "cpu"]

@pytest.fixture(params=BACKENDS, scope="session")
def backend(request):
    """Each backend name in turn (session-scoped so Hypothesis tests can use it)."""
    return request.param


@pytest.fixture(scope="session")
def cpu_backend():
    """The cpu backend alone, for shapes too big for the reference backend."""
    return "cpu"


@pytest.fixture
def rng(request):
    """A NumPy Generator seeded from the test's node id: reproducible, and
    different for each test and parameter set."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


settings.register_profile(
    "fastdeconv",
    derandomize=True,
    max_examples=60,
    deadline=None,
    print_blob=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", parent=settings.get_profile("fastdeconv"), max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fastdeconv"))
