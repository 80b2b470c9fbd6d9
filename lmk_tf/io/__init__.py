"""Medical image I/O with geometry: DICOM (files and series), NIfTI,
MetaImage, NRRD and ordinary pictures, read into `lmk_tf.image.Image`.

Format libraries (pydicom, nibabel, SimpleITK, Pillow) are imported only when
a file of their kind is read, so importing this package is cheap.
"""

from lmk_tf.io.formats import FORMATS, detect_format, read_image, write_image
from lmk_tf.io.info import describe, format_description

__all__ = ["FORMATS", "describe", "detect_format", "format_description", "read_image", "write_image"]
