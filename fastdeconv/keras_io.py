"""Load a saved Keras model into `fastdeconv.layers`, without TensorFlow or
Keras: the files are read with the standard library (zip, JSON) and h5py.

Two formats:

- Keras 3 `.keras`: a zip of `config.json` (the model's layers and how they
  connect) and `model.weights.h5`, where a layer's variables are the
  datasets `0, 1, ...` of the group `layers/<key>/vars`. The key is the
  layer's class name in snake_case, made unique in layer order
  (`conv2d`, `conv2d_1`, ...); Keras 3 also writes the layer's name as the
  `name` attribute of `vars`, which is what we match on when present.
- legacy HDF5 `.h5` (`model.save("x.h5")` in Keras 3, or tf.keras 2): the
  attribute `model_config` (the same JSON) and the group `model_weights`,
  with one group per layer name whose attribute `weight_names` lists the
  layer's datasets in order.

Nothing from the file is ever executed: no pickle, no eval, no marshal.
Lambda layers and custom classes are refused by name. Every problem with
the file (not a Keras file, truncated, corrupted, weights that do not fit
the config) is a `KerasFileError`, a `ValueError`; a layer or option we do
not implement is an `UnsupportedLayerError`, a `KerasFileError`.
"""

import io
import json
import os
import struct
import zipfile

import numpy as np

from . import layers as L
from .errors import ShapeError
from .layers._base import snake_case

__all__ = ["load_keras", "KerasFileError", "UnsupportedLayerError", "SUPPORTED_LAYERS"]


class KerasFileError(ValueError):
    """A Keras model file that cannot be read or does not fit together."""


class UnsupportedLayerError(KerasFileError):
    """A layer class (or a layer option) that fastdeconv does not implement."""


_CLASSES = {name: getattr(L, name) for name in (
    "InputLayer", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D", "Resizing",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "Dense", "Flatten", "Reshape",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout", "AlphaDropout",
    "GaussianNoise", "ActivityRegularization", "Identity",
    "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Rescaling", "Permute",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")}
# Older spellings that Keras still reads.
_ALIASES = {"MaxPool1D": "MaxPooling1D", "MaxPool2D": "MaxPooling2D", "MaxPool3D": "MaxPooling3D",
            "AvgPool1D": "AveragePooling1D", "AvgPool2D": "AveragePooling2D", "AvgPool3D": "AveragePooling3D",
            "Convolution1D": "Conv1D", "Convolution2D": "Conv2D", "Convolution3D": "Conv3D",
            "Convolution2DTranspose": "Conv2DTranspose", "Convolution3DTranspose": "Conv3DTranspose",
            "Deconvolution2D": "Conv2DTranspose", "Deconvolution3D": "Conv3DTranspose",
            "GlobalMaxPool1D": "GlobalMaxPooling1D", "GlobalMaxPool2D": "GlobalMaxPooling2D",
            "GlobalMaxPool3D": "GlobalMaxPooling3D", "GlobalAvgPool1D": "GlobalAveragePooling1D",
            "GlobalAvgPool2D": "GlobalAveragePooling2D", "GlobalAvgPool3D": "GlobalAveragePooling3D",
            "SeparableConvolution1D": "SeparableConv1D", "SeparableConvolution2D": "SeparableConv2D"}
SUPPORTED_LAYERS = tuple(_CLASSES)
_MODELS = ("Functional", "Model", "Sequential")


def load_keras(path, backend=None):
    """A `fastdeconv.layers.Model` from a Keras `.keras` or `.h5` file.

    `backend` ('cpu', 'reference', 'cuda'; default 'cpu') is the model's
    engine for `predict`. Computation is in float32.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path, backend)
        if _is_hdf5(path):
            return _load_h5(path, backend)
    except KerasFileError:
        raise
    except (OSError, KeyError, EOFError, zipfile.BadZipFile, RuntimeError) as e:
        raise KerasFileError(f"{path}: the file is damaged or truncated and cannot be read "
                             f"({type(e).__name__}: {e})") from e
    raise KerasFileError(f"{path}: not a Keras model file: neither a .keras zip archive nor an HDF5 (.h5) file "
                         "(a truncated .keras file also looks like this)")


def _is_hdf5(path):
    with open(path, "rb") as f:
        head = f.read(8)
    return head == b"\x89HDF\r\n\x1a\n"


def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is a dependency of the keras extra
        raise ImportError("reading Keras files needs h5py: pip install 'fastdeconv[keras]'") from e
    return h5py


# --- the two containers ------------------------------------------------------------------

def _load_zip(path, backend):
    h5py = _h5py()
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        if "config.json" not in names:
            raise KerasFileError(f"{path}: a zip file without config.json is not a Keras 3 .keras file")
        config = _json(zf.read("config.json"), path, "config.json")
        if "model.weights.h5" not in names:
            extra = " (sharded weights are not supported)" if "model.weights.json" in names else ""
            raise KerasFileError(f"{path}: no model.weights.h5 in the archive{extra}")
        info = zf.getinfo("model.weights.h5")
        with _member(zf, info, path) as raw, h5py.File(raw, "r") as f:
            return _build(config, _KerasWeights(f, path), path, backend)


class _Window(io.RawIOBase):
    """Read-only view of bytes [start, start + size) of a file: how h5py
    reads a member that Keras stored uncompressed, without copying it."""

    def __init__(self, path, start, size):
        super().__init__()
        self._f, self._start, self._size, self._pos = open(path, "rb"), start, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buf):
        n = max(0, min(len(buf), self._size - self._pos))
        self._f.seek(self._start + self._pos)
        got = self._f.readinto(memoryview(buf)[:n])
        self._pos += got
        return got

    def close(self):
        self._f.close()
        super().close()


def _member(zf, info, path):
    """A seekable file object for a zip member: a window into the archive
    when stored, else the decompressed bytes in memory."""
    if info.compress_type == zipfile.ZIP_STORED:
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            header = f.read(30)
        if len(header) == 30 and header[:4] == b"PK\x03\x04":
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            start = info.header_offset + 30 + name_len + extra_len
            if start + info.file_size <= os.path.getsize(path):
                return _Window(path, start, info.file_size)
        raise KerasFileError(f"{path}: the archive's entry for model.weights.h5 is damaged")
    return io.BytesIO(zf.read(info))


def _load_h5(path, backend):
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs:
            raise KerasFileError(f"{path}: an HDF5 file without a model_config attribute holds weights only "
                                 "(saved with save_weights?); fastdeconv needs the whole model "
                                 "(model.save('model.keras') or model.save('model.h5'))")
        config = _json(f.attrs["model_config"], path, "model_config")
        if "model_weights" not in f:
            raise KerasFileError(f"{path}: no model_weights group (the model was saved without weights)")
        return _build(config, _LegacyWeights(f["model_weights"], path), path, backend)


def _json(raw, path, what):
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    try:
        config = json.loads(raw)
    except (ValueError, TypeError) as e:
        raise KerasFileError(f"{path}: {what} is not valid JSON ({e})") from e
    if not isinstance(config, dict):
        raise KerasFileError(f"{path}: {what} does not describe a model")
    return config


def _read(ds, where, path):
    """A float dataset as a NumPy array (nothing else is ever read)."""
    if not hasattr(ds, "dtype") or ds.dtype.kind != "f":
        kind = getattr(ds, "dtype", type(ds).__name__)
        raise KerasFileError(f"{path}: {where} is {kind}, not a float array")
    if ds.attrs.get("dtype") == "bfloat16":
        raise KerasFileError(f"{path}: {where} is stored as bfloat16, which fastdeconv does not read")
    return np.asarray(ds[()])


class _KerasWeights:
    """Layer name -> its arrays, from a Keras 3 model.weights.h5."""

    def __init__(self, f, path):
        self.f, self.path = f, path
        self.by_name = {}
        group = f.get("layers")
        if group is not None:
            for key in group:
                vars_ = group[key].get("vars") if hasattr(group[key], "get") else None
                name = vars_.attrs.get("name") if vars_ is not None else None
                if isinstance(name, bytes):
                    name = name.decode()
                if name is not None:
                    self.by_name[str(name)] = f"layers/{key}/vars"

    def keys_in_order(self, configs, sequential):
        """Keras' own keys (class name in snake_case, made unique in layer
        order) for files that do not record the layer names."""
        used, keys = {}, {}
        for cfg in configs:
            if sequential and cfg["class_name"] == "InputLayer":
                continue
            base = snake_case(cfg["class_name"])
            n = used.get(base, -1) + 1
            used[base] = n
            keys[cfg["config"]["name"]] = f"layers/{base if n == 0 else f'{base}_{n}'}/vars"
        return keys

    def get(self, name, fallback_keys):
        key = self.by_name.get(name) if self.by_name else fallback_keys.get(name)
        if key is None or key not in self.f:
            return []
        vars_ = self.f[key]
        count = len(vars_.keys())
        if sorted(vars_.keys()) != sorted(str(i) for i in range(count)):
            raise KerasFileError(f"{self.path}: layer {name!r}: variables {sorted(vars_.keys())} in {key}, "
                                 "expected 0, 1, ...")
        return [_read(vars_[str(i)], f"{key}/{i}", self.path) for i in range(count)]


class _LegacyWeights:
    """Layer name -> its arrays, from the model_weights group of a legacy .h5."""

    def __init__(self, group, path):
        self.group, self.path = group, path

    def keys_in_order(self, configs, sequential):
        return {}

    def get(self, name, fallback_keys):
        if name not in self.group:
            return []
        g = self.group[name]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs.get("weight_names", [])]
        arrays = []
        for n in names:
            if n not in g:
                raise KerasFileError(f"{self.path}: layer {name!r} lists weight {n!r}, which is not in the file")
            arrays.append(_read(g[n], f"model_weights/{name}/{n}", self.path))
        return arrays


# --- config -> layers -----------------------------------------------------------------------

def _refuse(cfg, path, why=None):
    name = cfg.get("config", {}).get("name", cfg.get("name", "?")) if isinstance(cfg, dict) else "?"
    cls = cfg.get("class_name", "?") if isinstance(cfg, dict) else "?"
    if why is None:
        if cls == "Lambda":
            why = ("Lambda layers hold Python code, and fastdeconv never runs code from a model file; "
                   "rewrite the Lambda as built-in layers")
        elif cls in _MODELS:
            why = "nested models are not supported; save the inner model's layers in one model"
        else:
            why = "this layer class is not implemented (custom classes are refused: their code is not in the file)"
    raise UnsupportedLayerError(f"{path}: layer {name!r} of class {cls!r}: {why}. "
                                f"Supported layers: {', '.join(SUPPORTED_LAYERS)}.")


def _class_of(cfg, path):
    cls = cfg.get("class_name")
    cls = _ALIASES.get(cls, cls)
    module = cfg.get("module")
    registered = cfg.get("registered_name")
    builtin = (module is None or str(module).startswith("keras")) and registered in (None, cls)
    if cls not in _CLASSES or not builtin:
        _refuse(cfg, path)
    return _CLASSES[cls]


def _activation(value, cfg, path):
    """'relu', None, or Keras 3's serialized form of a built-in function."""
    if isinstance(value, dict):
        module = str(value.get("module") or "")
        inner = value.get("config")
        if not module.startswith("keras") or not isinstance(inner, str):
            _refuse(cfg, path, f"activation {value.get('class_name')!r} is not a built-in activation")
        value = inner
    if value is not None and (not isinstance(value, str) or L._base._ALIASES.get(value, value)
                              not in L.ACTIVATIONS):
        _refuse(cfg, path, f"activation {value!r} is not supported (supported: {', '.join(L.ACTIVATIONS)})")
    return value


_IGNORED = {"trainable", "dtype", "kernel_initializer", "bias_initializer", "kernel_regularizer",
            "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint", "seed",
            "noise_shape", "beta_initializer", "gamma_initializer", "moving_mean_initializer",
            "moving_variance_initializer", "beta_regularizer", "gamma_regularizer", "beta_constraint",
            "gamma_constraint", "momentum", "synchronized", "renorm_momentum", "sparse", "ragged", "optional",
            "lora_alpha", "input_dim", "fill_mode", "fill_value", "batch_input_shape", "batch_shape", "name", "input_shape",
            "depthwise_initializer", "depthwise_regularizer", "depthwise_constraint", "pointwise_initializer",
            "pointwise_regularizer", "pointwise_constraint", "alpha_initializer", "alpha_regularizer",
            "alpha_constraint"}
# Options that change the arithmetic and must have their default value.
_DEFAULTS = {"renorm": False, "renorm_clipping": None, "lora_rank": None, "quantization_config": None,
             "adjustment": None, "fused": None, "virtual_batch_size": None, "sparse": False, "ragged": False}


def _make_layer(cfg, path):
    if not isinstance(cfg, dict) or not isinstance(cfg.get("config"), dict):
        raise KerasFileError(f"{path}: malformed layer entry {str(cfg)[:200]}")
    cls = _class_of(cfg, path)
    conf = cfg["config"]
    for key, default in _DEFAULTS.items():
        if key in conf and conf[key] not in (default, False, None):
            _refuse(cfg, path, f"option {key}={conf[key]!r} is not supported")
    if conf.get("dtype") and isinstance(conf["dtype"], dict) and conf["dtype"].get("class_name") not in (
            "DTypePolicy", "FloatDTypePolicy", "Policy", None):
        _refuse(cfg, path, f"dtype policy {conf['dtype'].get('class_name')!r} (quantized?) is not supported")
    kwargs = {k: v for k, v in conf.items() if k not in _IGNORED and k not in _DEFAULTS}
    if "activation" in kwargs:
        kwargs["activation"] = _activation(kwargs["activation"], cfg, path)
    name = conf.get("name")
    try:
        if cls is L.InputLayer:
            shape = conf.get("batch_shape") or conf.get("batch_input_shape")
            if shape is None:
                raise KerasFileError(f"{path}: input layer {name!r} has no batch_shape")
            return cls(batch_shape=shape, name=name)
        return cls(name=name, **kwargs)
    except KerasFileError:
        raise
    except (ValueError, TypeError) as e:
        _refuse(cfg, path, f"its configuration is not supported or is invalid ({e})")


def _history(ref, path):
    """(layer name, node index, tensor index) of an inbound tensor reference."""
    if isinstance(ref, dict):  # Keras 3: {"class_name": "__keras_tensor__", "config": {"keras_history": [...]}}
        if ref.get("class_name") != "__keras_tensor__":
            raise KerasFileError(f"{path}: unexpected inbound value {str(ref)[:200]}")
        ref = ref["config"]["keras_history"]
    name, node, index = ref[0], ref[1], ref[2]
    return str(name), int(node), int(index)


def _inbound(node, path):
    """The inbound tensor references of one call of a layer, and whether
    the layer was called on a list."""
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        args = node.get("args", [])
        kwargs = node.get("kwargs", {}) or {}
        if any(isinstance(v, (dict, list)) and v for v in kwargs.values()):
            raise KerasFileError(f"{path}: layer call with tensor keyword arguments {sorted(kwargs)} "
                                 "is not supported")
        if len(args) != 1:
            raise KerasFileError(f"{path}: layer called with {len(args)} positional arguments; expected 1")
        arg = args[0]
        if isinstance(arg, list):
            return [_history(a, path) for a in arg], True
        return [_history(arg, path)], False
    # tf.keras 2: [[name, node_index, tensor_index, kwargs], ...]
    refs = [_history(r, path) for r in node]
    return refs, len(refs) > 1


def _io_refs(value):
    if value and isinstance(value[0], str):
        return [value], True
    return list(value), len(value) == 1


def _build(config, weights, path, backend):
    try:
        return _build_model(config, weights, path, backend)
    except KerasFileError:
        raise
    except ShapeError as e:
        raise KerasFileError(f"{path}: the weights do not fit the model's configuration: {e}") from e
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
        raise KerasFileError(f"{path}: malformed model configuration ({type(e).__name__}: {e})") from e


def _build_model(config, weights, path, backend):
    cls = config.get("class_name")
    if cls not in _MODELS or config.get("registered_name") not in (None, cls, "Functional", "Sequential"):
        raise UnsupportedLayerError(f"{path}: the model is a {cls!r}: only Functional and Sequential models "
                                    "can be loaded (subclassed models keep their code outside the file)")
    conf = config["config"]
    configs = conf["layers"]
    sequential = cls == "Sequential"
    keys = weights.keys_in_order(configs, sequential)
    made = []
    for cfg in configs:
        layer = _make_layer(cfg, path)
        if not isinstance(layer, L.InputLayer):
            layer.set_weights(weights.get(layer.name, keys))
        made.append((cfg, layer))
    name = conf.get("name")
    if sequential:
        return _sequential(conf, made, path, name, backend)
    return _functional(conf, made, path, name, backend)


def _sequential(conf, made, path, name, backend):
    if made and isinstance(made[0][1], L.InputLayer):
        x = made.pop(0)[1].output
    else:
        shape = conf.get("build_input_shape")
        if shape is None and made:
            first = made[0][0]["config"]
            shape = first.get("batch_input_shape") or first.get("batch_shape")
        if shape is None:
            raise KerasFileError(f"{path}: the Sequential model does not record its input shape")
        x = L.Input(batch_shape=shape)
    inp = x
    for _, layer in made:
        x = layer(x)
    return L.Model(inp, x, name=name, backend=backend)


def _functional(conf, made, path, name, backend):
    by_name = {layer.name: (cfg, layer) for cfg, layer in made}
    produced = {}  # (layer name, node index) -> Tensor
    pending = []
    for cfg, layer in made:
        if isinstance(layer, L.InputLayer):
            produced[(layer.name, 0)] = layer.output
            continue
        nodes = cfg.get("inbound_nodes") or []
        for i, node in enumerate(nodes):
            refs, as_list = _inbound(node, path)
            pending.append((layer, i, refs, as_list))
    # Resolve calls whose inputs exist; config order is normally topological.
    while pending:
        left = []
        for layer, i, refs, as_list in pending:
            if all((r[0], r[1]) in produced for r in refs):
                ts = [produced[(r[0], r[1])] for r in refs]
                if any(r[2] != 0 for r in refs):
                    raise KerasFileError(f"{path}: layer {layer.name!r} reads output {refs} of a multi-output "
                                         "layer; not supported")
                produced[(layer.name, i)] = layer(ts if (as_list or layer.multi_input) else ts[0])
            else:
                left.append((layer, i, refs, as_list))
        if len(left) == len(pending):
            missing = sorted({r[0] for _, _, refs, _ in left for r in refs if r[0] not in by_name})
            raise KerasFileError(f"{path}: the layer graph cannot be built: "
                                 + (f"unknown layers {missing}" if missing else "it has a cycle"))
        pending = left
    ins, single_in = _io_refs(conf["input_layers"])
    outs, single_out = _io_refs(conf["output_layers"])

    def tensor(ref):
        key = (str(ref[0]), int(ref[1]))
        if key not in produced:
            raise KerasFileError(f"{path}: model input/output {list(ref)} is not produced by any layer")
        return produced[key]

    inputs = [tensor(r) for r in ins]
    outputs = [tensor(r) for r in outs]
    return L.Model(inputs[0] if single_in else inputs, outputs[0] if single_out else outputs, name=name,
                   backend=backend)
