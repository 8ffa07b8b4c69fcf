"""Backend registry. Every backend module has the same two functions,
`forward` and `transpose`, over canonical 5-D arrays (see `reference`).
Modules are imported on first use so that importing fastdeconv stays cheap.
"""

import importlib

_MODULES = {
    "reference": "fastdeconv.backends.reference",
    "cpu": "fastdeconv.backends.cpu",
    "cuda": "fastdeconv.backends.cuda",
}


_LOADED = {}


def get(name):
    module = _LOADED.get(name)
    if module is None:
        module = _LOADED[name] = importlib.import_module(_MODULES[name])
    return module
