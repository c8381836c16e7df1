"""The project's error types. Each carries a one-line message naming the culprit;
the CLI prints it as `visdial-lg: error: <message>` and exits with status 2."""


class VisdialLGError(Exception):
    """Base class of errors caused by bad input rather than by a bug."""


class InputFormatError(VisdialLGError, ValueError):
    """A data file (JSON, HDF5, image, archive) does not have the expected content."""


# torch's own lines around a weights_only refusal (its advice to load unsafely included).
_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation", "In PyTorch 2.6")


def weights_only_refusal(what: str, path, error: Exception) -> str:
    """One line of ours for torch.load(weights_only=True)'s multi-line refusal of `path`."""
    lines = [line.strip() for line in str(error).splitlines()]
    detail = " ".join(line for line in lines if line and not line.startswith(_TORCH_BOILERPLATE))
    if "GLOBAL" in detail:  # "Trying to load unsupported GLOBAL posix.system whose module ..."
        name = detail.split("GLOBAL", 1)[1].split()[0]
        return (f"{what} {path} holds pickled code or objects other than tensors/arrays ({name}); "
                "refusing to load it (only tensor state dicts are accepted)")
    return f"cannot read {what} {path}: not a torch checkpoint of tensors ({detail or 'unreadable pickle'})"


def one_line(error: VisdialLGError) -> str:
    """The error's message. An error raised in a DataLoader worker comes back re-raised with
    torch's text and the worker's traceback around it; its last line is our message."""
    text = str(error).strip()
    if "\n" not in text:
        return text
    last = text.splitlines()[-1]
    prefix = f"{type(error).__module__}.{type(error).__name__}: "
    return last[len(prefix):] if last.startswith(prefix) else last
