"""Keras-style layers and models for inference, without TensorFlow.

    from fastdeconv import layers as L
    x = L.Input((64, 64, 64, 1))
    y = L.Conv3D(16, 3, padding="same", activation="relu")(x)
    model = L.Model(x, L.Conv3DTranspose(1, 2, strides=2)(L.MaxPooling3D(2)(y)))
    model.summary(); model.predict(data, batch_size=4)

Arguments, weight layouts and arithmetic are Keras' (TensorFlow backend);
convolutions run on fastdeconv's ops, so `backend=` ('cpu', 'reference',
'cuda') picks the engine. `fastdeconv.load_keras` builds a Model from a
saved .keras or .h5 file.
"""

from ._base import ACTIVATIONS, Layer, Tensor
from .conv import (Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose, DepthwiseConv1D,
                   DepthwiseConv2D, SeparableConv1D, SeparableConv2D)
from .core import (ELU, Activation, ActivityRegularization, Add, AlphaDropout, Average, BatchNormalization,
                   Concatenate, Dense, Dropout, Flatten, GaussianDropout, GaussianNoise, Identity, Input, InputLayer,
                   LeakyReLU, Maximum, Minimum, Multiply, Permute, PReLU, ReLU, Rescaling, Reshape, Softmax,
                   SpatialDropout1D, SpatialDropout2D, SpatialDropout3D, Subtract)
from .model import Model, Sequential
from .normalization import GroupNormalization, LayerNormalization
from .pooling import (AveragePooling1D, AveragePooling2D, AveragePooling3D, GlobalAveragePooling1D,
                      GlobalAveragePooling2D, GlobalAveragePooling3D, GlobalMaxPooling1D, GlobalMaxPooling2D,
                      GlobalMaxPooling3D, MaxPooling1D, MaxPooling2D, MaxPooling3D, Resizing, UpSampling1D,
                      UpSampling2D, UpSampling3D)
from .reshaping import Cropping1D, Cropping2D, Cropping3D, ZeroPadding1D, ZeroPadding2D, ZeroPadding3D

__all__ = [
    "ACTIVATIONS", "Layer", "Tensor", "Input", "Model", "Sequential",
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D", "Resizing",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "Dense", "Flatten", "Reshape", "Dropout",
    "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Rescaling", "Permute",
    "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout", "AlphaDropout", "GaussianNoise",
    "ActivityRegularization", "Identity",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "InputLayer",
]
