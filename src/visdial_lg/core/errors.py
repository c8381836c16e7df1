"""The project's error types. Each carries a one-line message naming the culprit;
the CLI prints it as `visdial-lg: error: <message>` and exits with status 2."""


class VisdialLGError(Exception):
    """Base class of errors caused by bad input rather than by a bug."""


class InputFormatError(VisdialLGError, ValueError):
    """A data file (JSON, HDF5, image, archive) does not have the expected content."""


def one_line(error: VisdialLGError) -> str:
    """The error's message. An error raised in a DataLoader worker comes back re-raised with
    torch's text and the worker's traceback around it; its last line is our message."""
    text = str(error).strip()
    if "\n" not in text:
        return text
    last = text.splitlines()[-1]
    prefix = f"{type(error).__module__}.{type(error).__name__}: "
    return last[len(prefix):] if last.startswith(prefix) else last
