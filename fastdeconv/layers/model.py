"""Model: a graph of layers, run batch by batch.

`Model(inputs, outputs)` takes the symbolic Tensors of the functional API
(skip connections, several inputs or outputs); `Sequential([...])` is the
same graph as a chain. `predict` streams the data in batches; within a
batch each activation is dropped as soon as its last consumer has run, and
a layer that can work in place (bias, activation, BatchNormalization, Add)
overwrites an input that nothing else reads any more. So at most one
batch's activations are alive, and only those still needed. On cpu the
memory of a dropped activation goes back to the model's pool
(fastdeconv._alloc) and holds a later layer's output, in this batch or the
next: no fresh pages, no page faults, after the first batch.
"""

import numpy as np

from .. import _alloc
from ..errors import ShapeError, message
from ._base import BACKENDS, Tensor, c_contiguous, kernels, on_device
from .conv import _Conv
from .core import Activation, BatchNormalization, Concatenate, Dense, Input, InputLayer


def _as_list(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


class Model:
    def __init__(self, inputs, outputs, name=None, backend=None, fuse=True):
        self.name = name or "model"
        self._single_input = not isinstance(inputs, (list, tuple))
        self._single_output = not isinstance(outputs, (list, tuple))
        self.inputs, self.outputs = _as_list(inputs), _as_list(outputs)
        for t in self.inputs + self.outputs:
            if not isinstance(t, Tensor):
                raise TypeError(f"Model inputs and outputs are symbolic Tensors (from fastdeconv.layers.Input), "
                                f"got {type(t).__name__}")
        for t in self.inputs:
            if not isinstance(t.node.layer, InputLayer):
                raise ValueError(f"model input {t} does not come from an Input")
        self.backend = _check_backend(backend)
        self.fuse = fuse
        self._pool = _alloc.Pool()
        self._device_pool = None  # backend='cuda': device buffers, made on first use
        self._order = self._toposort()
        self._fused = self._plan_fusion()
        self._slots = {}  # self.fuse -> _plan_concat_slots()
        found = {id(n.output) for n in self._order if isinstance(n.layer, InputLayer)}
        extra = found - {id(t) for t in self.inputs}
        if extra:
            names = [n.layer.name for n in self._order if id(n.output) in extra]
            raise ValueError(message(f"the outputs depend on inputs {names} that are not in the model's inputs",
                                     "every Input the outputs need listed in `inputs`", None))

    def _toposort(self):
        order, state = [], {}
        stack = [(t.node, False) for t in reversed(self.outputs)]
        while stack:
            node, done = stack.pop()
            if done:
                state[id(node)] = 2
                order.append(node)
                continue
            if state.get(id(node)) == 2:
                continue
            if state.get(id(node)) == 1:
                raise ValueError(f"the layer graph has a cycle through {node.layer.name!r}")
            state[id(node)] = 1
            stack.append((node, True))
            for t in reversed(node.inputs):
                if state.get(id(t.node)) != 2:
                    stack.append((t.node, False))
        return order

    def _plan_fusion(self):
        """{id(head node): [absorbed nodes]}: a Conv or Dense with a linear
        activation, followed by a BatchNormalization on its channel axis
        and/or an Activation, each the only reader of the value before it,
        runs as one layer: y = act((conv + bias) * scale + shift) in the
        conv's output pass. The same operations in the same order as the
        separate layers; only the rounding of the fused multiply-add differs."""
        readers = {}
        for node in self._order:
            for t in node.inputs:
                readers.setdefault(id(t), []).append(node)
        outputs = {id(t) for t in self.outputs}

        def only_reader(t):
            r = readers.get(id(t), [])
            return r[0] if len(r) == 1 and id(t) not in outputs and len(r[0].inputs) == 1 else None

        plan = {}
        for node in self._order:
            layer = node.layer
            if not isinstance(layer, (_Conv, Dense)) or layer.activation != "linear":
                continue
            chain, t = [], node.output
            nxt = only_reader(t)
            if nxt is not None and isinstance(nxt.layer, BatchNormalization):
                rank = len(t.shape)
                cf = isinstance(layer, _Conv) and layer.channels_first
                if nxt.layer.axis % rank == (1 if cf else rank - 1):
                    chain.append(nxt)
                    t = nxt.output
                    nxt = only_reader(t)
            if nxt is not None and type(nxt.layer).__name__ in ("Activation", "ReLU", "LeakyReLU", "ELU") and \
                    isinstance(nxt.layer, Activation):
                chain.append(nxt)
            if chain:
                plan[id(node)] = chain
        return plan

    def _plan_concat_slots(self, fused):
        """{id(conv node): (Concatenate node, c0, c1)}: a channels-last conv
        layer (with its fused chain) whose output is an input of a
        Concatenate along the last axis writes it straight into channels
        [c0, c1) of the Concatenate's output, allocated when the first of
        its inputs is computed; the Concatenate then only copies the inputs
        that no conv wrote (for the U-Net's skips: no copy at all). Other
        readers of such an output get that channel slice (a strided view)."""
        writer = {id(n.output): n for n in self._order}  # the node that computes each value
        for head_id, chain in fused.items():
            head = next(n for n in self._order if id(n) == head_id)
            for n in chain:
                writer[id(n.output)] = head
        outputs = {id(t) for t in self.outputs}
        slots = {}
        for node in self._order:
            layer = node.layer
            rank = len(node.output.shape)
            if not isinstance(layer, Concatenate) or layer.axis % rank != rank - 1:
                continue
            c0 = 0
            for t in node.inputs:
                c = t.shape[-1]
                head = writer[id(t)]
                if (isinstance(head.layer, _Conv) and not head.layer.channels_first and id(head) not in slots
                        and sum(u is t for u in node.inputs) == 1 and id(t) not in outputs):
                    slots[id(head)] = (node, c0, c0 + c)
                c0 += c
        return slots

    @staticmethod
    def _epilogue_of(chain):
        scale = shift = alpha = None
        activation = "linear"
        for node in chain:
            if isinstance(node.layer, BatchNormalization):
                scale, shift = node.layer._mul, node.layer._add
            else:
                activation, alpha = node.layer.activation, node.layer.alpha
        return scale, shift, activation, alpha

    # --- introspection ---------------------------------------------------------

    @property
    def layers(self):
        seen, out = set(), []
        for node in self._order:
            if id(node.layer) not in seen:
                seen.add(id(node.layer))
                out.append(node.layer)
        return out

    def get_layer(self, name):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}; layers: {[layer.name for layer in self.layers]}")

    @property
    def output_shape(self):
        shapes = [t.shape for t in self.outputs]
        return shapes[0] if self._single_output else shapes

    @property
    def input_shape(self):
        shapes = [t.shape for t in self.inputs]
        return shapes[0] if self._single_input else shapes

    def count_params(self, trainable=None):
        return sum(layer.count_params(trainable) for layer in self.layers)

    def get_weights(self):
        return [w for layer in self.layers for w in layer.get_weights()]

    def summary(self, print_fn=print, line_length=None):
        """A table like Keras': layer name (type), output shape, parameter count
        and, for graphs that are not a chain, the layers each one reads."""
        chain = all(len(n.inputs) <= 1 for n in self._order) and len(self.outputs) == 1
        rows = []
        for node in self._order:
            layer = node.layer
            conn = ", ".join(t.node.layer.name for t in node.inputs)
            rows.append((f"{layer.name} ({type(layer).__name__})", str(node.output.shape),
                         f"{layer.count_params():,}", conn))
        head = ("Layer (type)", "Output Shape", "Param #", "Connected to")
        cols = 3 if chain else 4
        widths = [max(len(r[i]) for r in rows + [head]) + 2 for i in range(cols)]
        total = sum(widths)
        if line_length:
            total = max(total, line_length)
        lines = [f'Model: "{self.name}"', "=" * total]
        fmt = lambda r: "".join(c.ljust(w) for c, w in zip(r[:cols], widths)).rstrip()  # noqa: E731
        lines.append(fmt(head))
        lines.append("=" * total)
        for r in rows:
            lines.append(fmt(r))
        lines.append("=" * total)
        t, nt = self.count_params(True), self.count_params(False)
        lines += [f"Total params: {t + nt:,}", f"Trainable params: {t:,}", f"Non-trainable params: {nt:,}",
                  "_" * total]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    # --- running -------------------------------------------------------------------------

    def _check_inputs(self, xs):
        if len(xs) != len(self.inputs):
            raise ValueError(message(f"{len(xs)} input arrays", f"{len(self.inputs)} (one per model input)", None))
        arrays = []
        n = None
        for x, t in zip(xs, self.inputs):
            x = np.asarray(x)
            if x.dtype.kind not in "fiub":
                raise TypeError(message(f"input of dtype {x.dtype}", "a numeric array", None))
            want = t.shape
            if x.ndim != len(want) or any(w is not None and w != g for w, g in zip(want[1:], x.shape[1:])):
                raise ShapeError(message(f"input {t.node.layer.name!r} has shape {list(x.shape)}",
                                         f"{list(want)} (None: any size)", None))
            if n is not None and x.shape[0] != n:
                raise ShapeError(message(f"inputs with batch sizes {n} and {x.shape[0]}", "one batch size", None))
            n = x.shape[0]
            arrays.append(x)
        return arrays, n

    def _run(self, batch, backend):
        """One batch through the graph; returns the output arrays (NumPy).
        On backend='cuda' the batch goes to the device once and every
        activation stays there until the outputs come back."""
        if backend == "cuda":
            k = kernels("cuda")
            if self._device_pool is None:
                self._device_pool = k.DevicePool()
            with self._device_pool.active():
                outs = self._run_graph([k.to_device(x) for x in batch], backend)
                host = [o.copy_to_host() if on_device(o) else np.asarray(o) for o in outs]
                for o in outs:
                    if on_device(o):
                        self._device_pool.give(o)  # copied: its memory serves the next batch
            return host
        with self._pool.active():
            return self._run_graph(batch, backend)

    def _run_graph(self, batch, backend):
        consumers = {}
        for node in self._order:
            for t in node.inputs:
                consumers[id(t)] = consumers.get(id(t), 0) + 1
        for t in self.outputs:
            consumers[id(t)] = consumers.get(id(t), 0) + 1
        values, buffer_of, buffer_refs = {}, {}, {}
        readers = {}  # id(memory owner) -> [owner, live values using it]

        device_address = kernels("cuda").device_address if backend == "cuda" else None

        def owner(v):
            """(key, pool, the array to give back) of the memory v lies in, or None."""
            if isinstance(v, np.ndarray):
                r = _alloc.root(v)
                return id(r), self._pool, r
            if device_address is not None and on_device(v):  # views of a device buffer share its address
                return ("device", device_address(v)), self._device_pool, v
            return None

        def hold(v):
            o = owner(v)
            if o is not None:
                readers.setdefault(o[0], [o, 0])[1] += 1

        def drop(v):
            o = owner(v)
            if o is not None:
                entry = readers[o[0]]
                entry[1] -= 1
                if entry[1] == 0:
                    del readers[o[0]]
                    _, pool, arr = entry[0]
                    pool.give(arr)  # only if the pool lent it

        user = set()  # buffers owned by the caller: never written
        for x, t in zip(batch, self.inputs):
            values[id(t)] = x
            hold(x)
            buffer_of[id(t)] = id(t)
            buffer_refs[id(t)] = consumers.get(id(t), 0)
            user.add(id(t))
        fused = self._fused if self.fuse else {}
        absorbed = {id(n) for chain in fused.values() for n in chain}
        slots = self._slots.get(self.fuse)
        if slots is None:
            slots = self._slots[self.fuse] = self._plan_concat_slots(fused)
        if backend != "cpu":
            slots = {}
        joined = {}  # id(Concatenate node) -> its output array, once allocated
        for node in self._order:
            if id(node.output) in values:
                continue  # a model input
            layer = node.layer
            args = [values[id(t)] for t in node.inputs]
            first = node.inputs[0]
            buf = buffer_of[id(first)]
            # in place only on a buffer of its own (never a concatenation's channel slice)
            inplace = (buf not in user and buffer_refs[buf] == 1 and sum(t is first for t in node.inputs) == 1
                       and hasattr(args[0], "shape") and c_contiguous(args[0]))
            slot = slots.get(id(node))
            key = None  # the concatenation buffer this node's output lies in
            if slot is not None:
                cat, c0, c1 = slot
                if id(cat) not in joined:
                    joined[id(cat)] = _alloc.empty((args[0].shape[0],) + tuple(cat.output.shape[1:]), args[0].dtype)
                epilogue = self._epilogue_of(fused[id(node)]) if id(node) in fused else None
                y = layer.call(args[0], backend, inplace=inplace, epilogue=epilogue,
                               out=joined[id(cat)][..., c0:c1])
                key = ("joined", id(cat))
            elif id(node) in joined:
                # a Concatenate whose output some inputs were written into:
                # copy the others into their channels
                y = joined.pop(id(node))
                c0 = 0
                for t, x in zip(node.inputs, args):
                    c1 = c0 + x.shape[-1]
                    view = y[..., c0:c1]
                    if x.ctypes.data != view.ctypes.data or x.strides != view.strides:  # not written there
                        view[...] = x
                    c0 = c1
                key = ("joined", id(node))
            elif id(node) in absorbed:
                y = args[0]  # already applied by the head of its chain
            elif id(node) in fused:
                y = layer.call(args[0], backend, inplace=inplace, epilogue=self._epilogue_of(fused[id(node)]))
            else:
                y = layer.call(args if layer.multi_input else args[0], backend, inplace=inplace)
            out = node.output
            if key is not None:
                buffer_of[id(out)] = key
                buffer_refs[key] = buffer_refs.get(key, 0) + consumers.get(id(out), 0)
            elif layer.aliases_input or id(node) in absorbed:
                buffer_of[id(out)] = buf
                buffer_refs[buf] += consumers.get(id(out), 0)
            else:
                buffer_of[id(out)] = id(out)
                buffer_refs[id(out)] = consumers.get(id(out), 0)
            values[id(out)] = y
            hold(y)
            for t in node.inputs:
                buffer_refs[buffer_of[id(t)]] -= 1
                consumers[id(t)] -= 1
                if consumers[id(t)] == 0:
                    drop(values.pop(id(t)))
        return [values[id(t)] for t in self.outputs]

    def predict(self, x, batch_size=32, backend=None, dtype=np.float32):
        """Outputs for all of `x` (an array, or a list for several inputs),
        computed `batch_size` examples at a time, in `dtype` (float32,
        float64; float16 is computed in float32 and rounded once, as the
        ops do)."""
        backend = _check_backend(backend) if backend is not None else self.backend
        xs, n = self._check_inputs(_as_list(x) if not self._single_input else [x])
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(message(f"batch_size={batch_size!r}", "a positive int", None))
        given = dtype
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind != "f" or dtype.itemsize not in (2, 4, 8):
            raise TypeError(message(f"predict(dtype={given!r})", "np.float32, np.float64 or np.float16", None))
        compute = np.dtype(np.float32) if dtype.itemsize == 2 else dtype
        results = None
        for start in range(0, max(n, 1), batch_size):
            batch = [np.ascontiguousarray(a[start:start + batch_size], compute) for a in xs]
            outs = self._run(batch, backend)
            if results is None:
                results = [np.empty((n,) + o.shape[1:], dtype) for o in outs]
            for r, o in zip(results, outs):
                r[start:start + o.shape[0]] = o
                self._pool.give(_alloc.root(o))  # copied: its memory serves the next batch
            del outs, batch
        return results[0] if self._single_output else results

    def __call__(self, x, backend=None):
        """The whole input as one batch (as keras' model(x))."""
        backend = _check_backend(backend) if backend is not None else self.backend
        xs, _ = self._check_inputs(_as_list(x) if not self._single_input else [x])
        outs = self._run([np.ascontiguousarray(a, np.float32) for a in xs], backend)
        return outs[0] if self._single_output else outs

    def __repr__(self):
        return f"<Model {self.name!r}: {len(self.layers)} layers, {self.count_params():,} params>"


class Sequential(Model):
    """A chain of layers. The first may be an InputLayer; otherwise pass
    `input_shape` (without the batch dim)."""

    def __init__(self, layers, input_shape=None, name=None, backend=None):
        layers = list(layers)
        if layers and isinstance(layers[0], InputLayer):
            x = layers.pop(0).output
        elif input_shape is not None:
            x = Input(shape=input_shape)
        else:
            raise ValueError("Sequential needs an InputLayer first or input_shape=")
        inp = x
        for layer in layers:
            x = layer(x)
        super().__init__(inp, x, name=name or "sequential", backend=backend)


def _check_backend(backend):
    backend = "cpu" if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(message(f"backend={backend!r}", " or ".join(map(repr, BACKENDS)) + " or None", None))
    return backend
