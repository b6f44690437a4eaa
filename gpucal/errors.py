"""Exceptions raised by gpucal. Each names the problem it reports."""


class GpucalError(Exception):
    """Base class of every error gpucal raises on purpose."""


class BackendUnavailableError(GpucalError, RuntimeError):
    """The requested backend cannot run here (CuPy missing, no device, driver error)."""


class InputError(GpucalError, ValueError):
    """Input arrays or metadata are unusable (shape, dtype, value)."""


class FileFormatError(InputError):
    """A file is not the JWST product (or reference file) that was expected."""


def one_line(message: object, limit: int = 300) -> str:
    """``message`` on one line of at most ``limit`` characters (another library's error text
    can span many lines, e.g. a schema validation error with the whole schema)."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
