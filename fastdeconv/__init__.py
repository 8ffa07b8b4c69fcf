"""fastdeconv: TensorFlow's convolutions and transposed convolutions on
NumPy + Numba, with the same signatures as tf.nn."""

from .errors import ShapeError
from .ops import conv1d, conv1d_transpose, conv2d, conv2d_transpose, conv3d, conv3d_transpose
from .shapes import conv_output_shape, conv_transpose_output_shapes

__version__ = "0.1.0"

__all__ = [
    "ShapeError",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv1d_transpose",
    "conv2d_transpose",
    "conv3d_transpose",
    "conv_output_shape",
    "conv_transpose_output_shapes",
]

# Keras-style layers and the Keras file loader (framework-free inference).
from . import layers  # noqa: E402
from .keras_io import KerasFileError, UnsupportedLayerError, load_keras  # noqa: E402

__all__ += ["layers", "load_keras", "KerasFileError", "UnsupportedLayerError"]
