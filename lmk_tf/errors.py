"""The package's own exception types.

Commands turn any `LmkError` into one line on stderr and exit code 2, so every
failure a user can cause (a bad file, a bad flag, a bad request) must surface as
one of these, with a message that names the file, tag, shape or value at fault.
"""


class LmkError(Exception):
    """Base class: a problem with the user's input or setup, not a bug."""


class ImageReadError(LmkError):
    """An image file or DICOM series could not be read or makes no sense."""


class LandmarkFileError(LmkError):
    """A landmark file could not be read or written."""


class ConfigError(LmkError):
    """A setting, flag or argument has a value that cannot work."""


class ModelError(LmkError):
    """A trained model or SavedModel is missing, incomplete or incompatible."""


class RequestError(LmkError):
    """A prediction request does not match the served contract."""
