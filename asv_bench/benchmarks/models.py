"""asv benchmarks: whole-model inference with fastdeconv.layers.

The models are the VGG16-style decoder (7x7x512 -> 224x224x3) at batch 1
and 8 and the two-level 3-D U-Net on a 64^3 volume, built directly with
fastdeconv.layers (seeded random weights, no Keras needed), so they run on
any commit that has fastdeconv.layers; older commits skip them.

    cd asv_bench && asv run --python=same --set-commit-hash $(git rev-parse HEAD) --bench models
"""

import numpy as np

MODELS = ["vgg16_decoder", "unet3d_64"]
BATCHES = {"vgg16_decoder": [1, 8], "unet3d_64": [1]}


def _layers():
    try:
        from fastdeconv import layers
    except ImportError:  # a commit before fastdeconv.layers
        raise NotImplementedError("fastdeconv.layers does not exist at this commit")
    return layers


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = []
        for w in layer.get_weights():
            if w.ndim > 1:  # kernels: He scaling keeps activations O(1)
                v = rng.standard_normal(w.shape) * np.sqrt(2.0 / np.prod(w.shape[:-1]))
            else:  # biases, BatchNormalization's gamma, beta, mean, variance (positive)
                v = rng.uniform(0.5, 1.5, w.shape)
            weights.append(v.astype(np.float32))
        if weights:
            layer.set_weights(weights)
    return model


def vgg16_decoder(L):
    x = inp = L.Input((7, 7, 512))
    for block, widths in enumerate([(512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64, 3)], 1):
        x = L.UpSampling2D(2)(x)
        for i, c in enumerate(widths):
            last = block == 5 and i == len(widths) - 1
            x = L.Conv2DTranspose(c, 3, padding="same", activation="sigmoid" if last else "relu")(x)
    return L.Model(inp, x, name="vgg16_decoder")


def unet3d_64(L, widths=(16, 32, 64)):
    def block(x, c):
        for _ in range(2):
            x = L.Activation("relu")(L.BatchNormalization()(L.Conv3D(c, 3, padding="same")(x)))
        return x

    inp = L.Input((64, 64, 64, 1))
    e1 = block(inp, widths[0])
    e2 = block(L.MaxPooling3D(2)(e1), widths[1])
    b = block(L.MaxPooling3D(2)(e2), widths[2])
    d2 = block(L.Concatenate()([L.Conv3DTranspose(widths[1], 2, strides=2)(b), e2]), widths[1])
    d1 = block(L.Concatenate()([L.Conv3DTranspose(widths[0], 2, strides=2)(d2), e1]), widths[0])
    return L.Model(inp, L.Conv3D(2, 1, activation="softmax")(d1), name="unet3d")


class Models:
    params = [MODELS, [1, 8]]
    param_names = ["model", "batch"]
    timeout = 600

    def setup(self, name, batch):
        if batch not in BATCHES[name]:
            raise NotImplementedError("not a benchmarked combination")
        L = _layers()
        self.model = _randomize(globals()[name](L))
        shape = (batch,) + tuple(self.model.input_shape[1:])
        self.x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        self.batch = batch
        self.model.predict(self.x, batch_size=batch)  # compile outside the timed region

    def time_predict(self, name, batch):
        self.model.predict(self.x, batch_size=self.batch)

    def peakmem_predict(self, name, batch):
        self.model.predict(self.x, batch_size=self.batch)
