"""pytest-benchmark suite (not collected by the default `python -m pytest`,
whose testpaths are `tests/`). See test_suite_bench.py for the commands."""

import pytest

pytest.importorskip("pytest_benchmark")
