"""Input tensors without TensorFlow's copies: shared memory only where it is safe."""

import numpy as np
import pytest

from lmk_tf.export.tensors import ALIGNMENT, SHARE_ABOVE, aligned, as_tensor, is_aligned


def unaligned(shape, dtype=np.float32):
    """A C-contiguous array whose data starts 4 bytes past an aligned address."""
    itemsize = np.dtype(dtype).itemsize
    buffer = np.zeros(int(np.prod(shape)) + 2 * ALIGNMENT // itemsize, dtype)
    start = (-buffer.ctypes.data % ALIGNMENT) // itemsize + 1
    out = buffer[start: start + int(np.prod(shape))].reshape(shape)
    assert not is_aligned(out)
    return out


def test_aligned_copies_only_what_is_not_already_aligned_and_of_the_dtype():
    a = unaligned((300, 1000))
    a[...] = np.arange(a.size, dtype=np.float32).reshape(a.shape)
    b = aligned(a)
    assert is_aligned(b) and b.flags.c_contiguous and not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, b)
    assert aligned(b) is b  # already right: no copy
    ints = np.arange(12, dtype=np.int16).reshape(3, 4)
    as_float = aligned(ints, np.float32)
    assert as_float.dtype == np.float32 and is_aligned(as_float)
    np.testing.assert_array_equal(as_float, ints)
    strided = aligned(np.arange(20, dtype=np.float32)[::2])
    assert strided.flags.c_contiguous and strided.tolist() == list(range(0, 20, 2))


def test_a_large_aligned_array_is_shared_not_copied():
    a = aligned(np.zeros((SHARE_ABOVE // 4 + 10,), np.float32))
    t = as_tensor(a)
    a[3] = 7.0  # seen by the tensor: it holds the array's own memory
    assert float(t[3]) == 7.0 and t.shape == a.shape


@pytest.mark.parametrize("make", [
    lambda: unaligned((SHARE_ABOVE // 4 + 10,)),       # TensorFlow aborts on unaligned memory
    lambda: np.zeros((100,), np.float32),               # small: a copy costs nothing
    lambda: np.zeros((SHARE_ABOVE,), bool),             # not numeric
])
def test_anything_else_is_copied(make):
    a = make()
    t = as_tensor(a)
    a[3] = 1
    assert float(np.asarray(t)[3]) == 0.0
    np.testing.assert_array_equal(np.asarray(t)[4:], a[4:])


def test_a_read_only_array_is_copied():
    a = aligned(np.zeros((SHARE_ABOVE // 4 + 10,), np.float32))
    a.flags.writeable = False
    assert float(as_tensor(a)[3]) == 0.0
