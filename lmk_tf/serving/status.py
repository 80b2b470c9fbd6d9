"""Request failures with the status code TF Serving answers them with.

Every failure a request can cause is one of these (all `RequestError`, so
commands print them as one line); the gRPC and REST front ends map `code` to a
grpc.StatusCode name or an HTTP status without looking at the message.
"""

from lmk_tf.errors import RequestError

# TF Serving's REST API answers NOT_FOUND with 404 and argument errors with 400.
HTTP_STATUS = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 413,
               "UNAVAILABLE": 503, "INTERNAL": 500}


class ServingError(RequestError):
    """A request that cannot be answered; `code` is a grpc.StatusCode name."""

    code = "INVALID_ARGUMENT"


class InvalidArgument(ServingError):
    code = "INVALID_ARGUMENT"


class NotFound(ServingError):
    code = "NOT_FOUND"


class ResourceExhausted(ServingError):
    code = "RESOURCE_EXHAUSTED"


class Unavailable(ServingError):
    code = "UNAVAILABLE"


class Internal(ServingError):
    code = "INTERNAL"


def code_of(error: Exception) -> str:
    """The status code name for any exception (unknown ones are INTERNAL)."""
    if isinstance(error, ServingError):
        return error.code
    return "INVALID_ARGUMENT" if isinstance(error, RequestError) else "INTERNAL"
