"""Arrays handed to a SavedModel's signatures without TensorFlow's own copies of them.

`tf.constant(array)` (and a concrete function called on an array) holds two
copies of the array while it converts; for a 512 x 512 x 300 float32 CT that
is 620 MB on top of the 315 MB array (measured with TensorFlow 2.21). A
tensor made through DLPack uses the array's memory instead, but TensorFlow's
kernels abort the process on memory that is not 64-byte aligned, so such
arrays are made aligned first (`aligned`), and anything else falls back to
`tf.constant`.
"""

import numpy as np
import tensorflow as tf

ALIGNMENT = 64  # bytes: Eigen's alignment on CPU (EIGEN_MAX_ALIGN_BYTES with AVX-512)
SHARE_ABOVE = 1 << 20  # bytes: below this a copy costs nothing worth avoiding


def is_aligned(array: np.ndarray) -> bool:
    return array.ctypes.data % ALIGNMENT == 0


def _usable_in_place(array: np.ndarray) -> bool:
    """Memory a tensor can be made on: contiguous, writeable (DLPack has no read-only flag), aligned."""
    return array.flags.c_contiguous and array.flags.writeable and is_aligned(array)


def aligned(array, dtype=None) -> np.ndarray:
    """`array` as a C-contiguous array of `dtype` in aligned memory; copied only when it is not one."""
    array = np.asarray(array)
    dtype = np.dtype(dtype or array.dtype)
    if array.dtype == dtype and _usable_in_place(array):
        return array
    spare = ALIGNMENT // dtype.itemsize
    buffer = np.empty(array.size + spare, dtype)
    start = (-buffer.ctypes.data % ALIGNMENT) // dtype.itemsize
    out = buffer[start: start + array.size].reshape(array.shape)
    out[...] = array
    return out


def as_tensor(array: np.ndarray) -> tf.Tensor:
    """A tensor of `array`: sharing its memory when it is large, aligned, numeric and writeable
    (the tensor keeps it alive), else a copy. The array must not change while the tensor is used."""
    if array.nbytes >= SHARE_ABOVE and array.dtype.kind in "fiu" and _usable_in_place(array):
        return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
    return tf.constant(array)
