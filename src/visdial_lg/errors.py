"""The project's error types. Each carries a one-line message naming the culprit;
the CLI prints it as `visdial-lg: error: <message>` and exits with status 2."""


class VisdialLGError(Exception):
    """Base class of errors caused by bad input rather than by a bug."""


class InputFormatError(VisdialLGError, ValueError):
    """A data file (JSON, HDF5, image, archive) does not have the expected content."""
