"""`serving_batch` and `serving_encoded` built around any `serving_default`.

Both call the one-image function they are given, so their answers are its answers:
`batch_signature` maps it over a leading batch dimension (tf.map_fn; each image keeps
the graph's own input asserts) and `encoded_signature` decodes a PNG or JPEG file in the
graph first, as TF Serving's image examples do. The function may be a ServingModule's or
one loaded from an older SavedModel (`rewrap.py`), which is how a version exported before
these signatures gains them without retraining.
"""

from __future__ import annotations

import tensorflow as tf

from lmk_tf.export import contract

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


def output_specs(serve) -> dict[str, tf.TensorSpec]:
    """TensorSpecs of a one-image function's outputs (a tf.function with an input
    signature, or a loaded concrete function)."""
    concrete = serve.get_concrete_function() if hasattr(serve, "get_concrete_function") else serve
    return {k: tf.TensorSpec(t.shape, t.dtype) for k, t in concrete.structured_outputs.items()}


def batch_signature(serve, ndim: int, keys=None) -> tf.types.experimental.PolymorphicFunction:
    """`serving_batch`: image [B, *spatial, 1] (one size per batch) and spacing [B, ndim] ->
    every output of `serve` (or those in `keys`) with a leading B."""
    specs = output_specs(serve)
    specs = {k: specs[k] for k in (keys or specs)}

    def one(args):
        out = serve(image=args[0], spacing=args[1])
        return {k: out[k] for k in specs}

    def batched(image, spacing):
        same = tf.debugging.assert_equal(
            tf.shape(image)[0], tf.shape(spacing)[0],
            message=f"inputs '{contract.IMAGE}' and '{contract.SPACING}' must have the same batch size")
        with tf.control_dependencies([same]):
            # parallel_iterations=1: images one after another, so a batch of 8 full-size
            # images needs one image's working memory, not eight (and no speed is lost on
            # a CPU the graph's own ops already keep busy).
            return tf.map_fn(one, (tf.identity(image), spacing), fn_output_signature=specs,
                             parallel_iterations=1)

    return tf.function(batched, input_signature=contract.batch_signature_specs(ndim))


def _png_size(head):
    """[height, width] from a PNG's IHDR chunk (bytes 16-23, big-endian)."""
    b = tf.cast(tf.io.decode_raw(tf.strings.substr(head, 16, 8), tf.uint8), tf.int64)
    return tf.stack([((b[4] * 256 + b[5]) * 256 + b[6]) * 256 + b[7], ((b[0] * 256 + b[1]) * 256 + b[2]) * 256 + b[3]])


def decode_image_bytes(image_bytes):
    """A PNG (8- or 16-bit) or JPEG file -> float32 [H, W, 1] holding its stored values.

    The size is read from the header and checked before anything is decoded, so a
    small file that claims a huge image fails with a message, not an allocation. A
    16-bit PNG keeps its 16 bits; colour becomes one grey channel (libjpeg's and
    libpng's conversions).
    """
    head = tf.strings.substr(image_bytes, 0, 32)
    head = tf.strings.join([head, tf.constant(b"\0" * 32)])  # a short file reads as zeros, not an error
    is_png = tf.strings.substr(head, 0, len(PNG_MAGIC)) == PNG_MAGIC
    is_jpeg = tf.strings.substr(head, 0, len(JPEG_MAGIC)) == JPEG_MAGIC
    known = tf.debugging.Assert(is_png | is_jpeg, [f"input '{contract.IMAGE_BYTES}' must be a PNG or JPEG file"])
    with tf.control_dependencies([known]):
        size = tf.cond(is_png, lambda: _png_size(head),
                       lambda: tf.cast(tf.io.extract_jpeg_shape(image_bytes)[:2], tf.int64))
    checks = [
        tf.debugging.assert_greater_equal(
            size, tf.constant(2, tf.int64), message=f"input '{contract.IMAGE_BYTES}' needs at least 2 pixels per axis"),
        tf.debugging.assert_less_equal(
            size[0] * size[1], tf.constant(contract.MAX_ENCODED_PIXELS, tf.int64),
            message=f"input '{contract.IMAGE_BYTES}' holds more than {contract.MAX_ENCODED_PIXELS} pixels"),
    ]
    depth16 = tf.equal(tf.strings.substr(head, 24, 1), b"\x10")

    def png():
        return tf.cond(depth16, lambda: tf.cast(tf.io.decode_png(image_bytes, channels=1, dtype=tf.uint16), tf.float32),
                       lambda: tf.cast(tf.io.decode_png(image_bytes, channels=1), tf.float32))

    # INTEGER_ACCURATE is libjpeg's default IDCT, the one Pillow (the client's reader) uses:
    # the same pixels to the last bit, where TF's default fast IDCT differs by up to 3 levels.
    with tf.control_dependencies(checks):
        image = tf.cond(is_png, png, lambda: tf.cast(
            tf.io.decode_jpeg(image_bytes, channels=1, dct_method="INTEGER_ACCURATE"), tf.float32))
    image.set_shape([None, None, 1])
    return image


def encoded_signature(serve, keys=None) -> tf.types.experimental.PolymorphicFunction:
    """`serving_encoded` (2D models): image_bytes (a PNG or JPEG file) and spacing [2] ->
    the outputs of `serve` (or those in `keys`) for the decoded pixels."""
    names = keys or list(output_specs(serve))

    def encoded(image_bytes, spacing):
        out = serve(image=decode_image_bytes(image_bytes), spacing=spacing)
        return {k: out[k] for k in names}

    return tf.function(encoded, input_signature=contract.encoded_signature_specs())
