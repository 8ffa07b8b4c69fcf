"""What load_keras refuses, and how: unsupported and code-carrying layers,
damaged files, weights that do not fit the configuration; and that loading
needs neither TensorFlow nor Keras."""

import ast
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import fastdeconv
from conftest import FORMATS
from fastdeconv import KerasFileError, UnsupportedLayerError
from keras_models import K, keras, rel_err


def _save(model, folder, fmt):
    path = Path(folder) / f"model.{fmt}"
    model.save(path)
    return path


@pytest.mark.parametrize("fmt", FORMATS)
def test_unsupported_layer_is_named(fmt, tmp_path):
    inp = keras.Input((8, 8, 3))
    x = K.Conv2D(4, 3, name="features")(inp)
    x = K.UnitNormalization(name="norm")(x)
    path = _save(keras.Model(inp, x), tmp_path, fmt)
    with pytest.raises(UnsupportedLayerError) as info:
        fastdeconv.load_keras(path)
    text = str(info.value)
    assert "'norm'" in text and "'UnitNormalization'" in text
    assert "Supported layers:" in text and "Conv3DTranspose" in text and "UpSampling2D" in text
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("fmt", FORMATS)
def test_lambda_is_refused_and_never_run(fmt, tmp_path):
    marker = tmp_path / "lambda-ran"

    def double(t, _marker=str(marker)):
        open(_marker, "w").close()
        return t * 2

    inp = keras.Input((4,))
    path = _save(keras.Model(inp, K.Lambda(double, name="doubler")(K.Dense(3)(inp))), tmp_path, fmt)
    marker.unlink(missing_ok=True)  # building the model ran it once
    with pytest.raises(UnsupportedLayerError, match=r"'doubler' of class 'Lambda'.*never runs code"):
        fastdeconv.load_keras(path)
    assert not marker.exists()


@keras.saving.register_keras_serializable(package="fastdeconv_tests")
class Scale(K.Layer):
    def call(self, x):
        return x * 3


@pytest.mark.parametrize("fmt", FORMATS)
def test_custom_layer_class_is_refused(fmt, tmp_path):
    inp = keras.Input((4,))
    path = _save(keras.Model(inp, Scale(name="triple")(inp)), tmp_path, fmt)
    with pytest.raises(UnsupportedLayerError, match=r"'triple' of class '(fastdeconv_tests>)?Scale'"):
        fastdeconv.load_keras(path)


def test_unsupported_option_is_refused(tmp_path):
    inp = keras.Input((8, 8, 3))
    path = _save(keras.Model(inp, K.UpSampling2D(2, interpolation="bicubic", name="up")(inp)), tmp_path, "keras")
    with pytest.raises(UnsupportedLayerError, match=r"'up' of class 'UpSampling2D'.*interpolation"):
        fastdeconv.load_keras(path)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    inp = keras.Input((6, 6, 2), name="x")
    x = K.Conv2D(5, 3, padding="same", name="conv")(inp)
    x = K.BatchNormalization(name="bn")(x)
    model = keras.Model(inp, K.Conv2DTranspose(3, 3, strides=2, padding="same", name="deconv")(x))
    return {fmt: _save(model, folder, fmt) for fmt in FORMATS}


def _raises_file_error(path, *patterns):
    with pytest.raises(KerasFileError) as info:
        fastdeconv.load_keras(path)
    for p in patterns:
        assert p in str(info.value), str(info.value)
    return info.value


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file(fmt, keep, small, tmp_path):
    data = small[fmt].read_bytes()
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(data[:int(len(data) * keep)])
    _raises_file_error(path, str(path))


@pytest.mark.parametrize("fmt", FORMATS)
def test_garbage_in_the_middle(fmt, small, tmp_path):
    """Overwritten bytes: a clear error, or (where only weight values were
    hit) a model that loads; never a crash."""
    data = bytearray(small[fmt].read_bytes())
    rng = np.random.default_rng(0)
    for start in range(0, len(data) - 64, max(1, len(data) // 40)):
        bad = bytearray(data)
        bad[start:start + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        path = tmp_path / f"bad{start}.{fmt}"
        path.write_bytes(bytes(bad))
        try:
            fastdeconv.load_keras(path)
        except KerasFileError:
            pass


def test_not_a_model_file(tmp_path):
    path = tmp_path / "notes.keras"
    path.write_text("hello")
    _raises_file_error(path, "not a Keras model file")
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    _raises_file_error(empty, "not a Keras model file")
    with pytest.raises(FileNotFoundError):
        fastdeconv.load_keras(tmp_path / "missing.keras")


def _rewrite_zip(src, dst, replace):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info, replace.get(info.filename, lambda d: d)(data))


def test_corrupted_config_json(small, tmp_path):
    path = tmp_path / "badjson.keras"
    _rewrite_zip(small["keras"], path, {"config.json": lambda d: d[: len(d) // 2]})
    _raises_file_error(path, "config.json is not valid JSON")


def test_truncated_weights_inside_archive(small, tmp_path):
    path = tmp_path / "cutweights.keras"
    _rewrite_zip(small["keras"], path, {"model.weights.h5": lambda d: d[: len(d) // 2]})
    _raises_file_error(path, str(path))


def _edit_config(config, layer, key, value):
    for cfg in config["config"]["layers"]:
        if cfg["config"]["name"] == layer:
            cfg["config"][key] = value
    return config


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("layer, key, value, expect", [
    ("conv", "filters", 6, "'kernel' has shape [3, 3, 2, 5]"),
    ("conv", "kernel_size", [5, 5], "'kernel' has shape [3, 3, 2, 5]"),
    ("conv", "use_bias", False, "got 2 weights"),
    ("bn", "center", False, "got 4 weights"),
    ("deconv", "filters", 4, "'kernel' has shape [3, 3, 3, 5]"),
])
def test_weights_that_do_not_fit_the_config(fmt, layer, key, value, expect, small, tmp_path):
    path = tmp_path / f"edited.{fmt}"
    if fmt == "keras":
        _rewrite_zip(small[fmt], path, {"config.json": lambda d: json.dumps(
            _edit_config(json.loads(d), layer, key, value)).encode()})
    else:
        path.write_bytes(small[fmt].read_bytes())
        with h5py.File(path, "r+") as f:
            f.attrs["model_config"] = json.dumps(_edit_config(json.loads(f.attrs["model_config"]), layer, key, value))
    err = _raises_file_error(path, "do not fit", f"'{layer}'", expect)
    assert not isinstance(err, UnsupportedLayerError)


def test_dangling_connection(small, tmp_path):
    def rename(d):
        config = json.loads(d)
        for cfg in config["config"]["layers"]:
            if cfg["config"]["name"] == "deconv":
                cfg["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0] = "nowhere"
        return json.dumps(config).encode()

    path = tmp_path / "dangling.keras"
    _rewrite_zip(small["keras"], path, {"config.json": rename})
    _raises_file_error(path, "unknown layers ['nowhere']")


def test_weights_only_file(tmp_path):
    inp = keras.Input((4,))
    model = keras.Model(inp, K.Dense(2)(inp))
    path = tmp_path / "only.weights.h5"
    model.save_weights(path)
    _raises_file_error(path, "weights only")


def test_loader_runs_no_code_from_files():
    """The loader never unpickles, evals, unmarshals or imports by name."""
    tree = ast.parse(Path(fastdeconv.keras_io.__file__).read_text())
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            used |= {a.name for a in node.names} | {getattr(node, "module", None) or ""}
        elif isinstance(node, ast.keyword):
            used.add(node.arg)
    forbidden = {"pickle", "eval", "exec", "marshal", "allow_pickle", "import_module", "__import__", "compile"}
    assert not used & forbidden, used & forbidden


_NO_FRAMEWORK = """
import sys
sys.modules["tensorflow"] = None
sys.modules["keras"] = None
import numpy as np
import fastdeconv
out = {}
for fmt, path in zip(("keras", "h5"), sys.argv[2:4]):
    model = fastdeconv.load_keras(path)
    out[fmt] = model.predict(np.load(sys.argv[1]), batch_size=2)
assert sys.modules["tensorflow"] is None and sys.modules["keras"] is None
np.savez(sys.argv[4], **out)
"""


def test_loading_needs_neither_tensorflow_nor_keras(saved, tmp_path):
    s = saved("zoo_2d")
    x = s.input(3)
    np.save(tmp_path / "x.npy", x)
    result = tmp_path / "out.npz"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    subprocess.run([sys.executable, "-c", _NO_FRAMEWORK, str(tmp_path / "x.npy"), str(s.paths["keras"]),
                    str(s.paths["h5"]), str(result)], check=True, env=env, timeout=300)
    out = np.load(result)
    for fmt in FORMATS:
        assert rel_err(out[fmt], s.expected(3)) <= 2e-6


@pytest.mark.parametrize("fmt", FORMATS)
def test_multi_input_output_and_shared_layer_load(fmt, saved):
    s = saved("two_inputs_shared")
    model = fastdeconv.load_keras(s.paths[fmt])
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((3, 9, 9, 3)).astype(np.float32) for _ in range(2)]
    ours = model.predict(xs, batch_size=2)
    theirs = s.keras_model(xs)
    assert len(ours) == 2
    for a, b in zip(ours, theirs):
        assert rel_err(a, np.asarray(b)) <= 2e-6


@pytest.mark.parametrize("fmt", FORMATS)
def test_nested_model_is_refused(fmt, tmp_path):
    inner = keras.Sequential([keras.Input((4,)), K.Dense(3)], name="inner")
    inp = keras.Input((4,))
    path = _save(keras.Model(inp, inner(inp)), tmp_path, fmt)
    with pytest.raises(UnsupportedLayerError, match=r"'inner' of class 'Sequential'.*nested"):
        fastdeconv.load_keras(path)


@pytest.mark.parametrize("builder", ["zoo_1d", "sequential_2d"])
def test_keras_file_without_layer_names_in_the_weights(builder, saved, tmp_path):
    """Older Keras 3 files do not write the layer name on `vars`; the
    weights are then found by Keras' own keys (snake_case class names made
    unique in layer order)."""
    s = saved(builder)
    weights = tmp_path / "model.weights.h5"
    with zipfile.ZipFile(s.paths["keras"]) as z:
        weights.write_bytes(z.read("model.weights.h5"))
    with h5py.File(weights, "r+") as f:
        f.visititems(lambda name, obj: obj.attrs.__delitem__("name") if "name" in obj.attrs else None)
    path = tmp_path / "unnamed.keras"
    _rewrite_zip(s.paths["keras"], path, {"model.weights.h5": lambda d: weights.read_bytes()})
    assert rel_err(fastdeconv.load_keras(path).predict(s.input(3)), s.expected(3)) <= 2e-6
