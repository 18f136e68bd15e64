"""The one exception type for bad user input: its message is a single line naming the thing and the fix."""


class ConfigError(RuntimeError):
    """Bad data folder, bad checkpoint, model/data mismatch: printed as one line, no traceback."""


class RunFolderRefused(ConfigError):
    """The run folder belongs to another run (locked by a live command, or already holding a run): the refused
    command must leave it exactly as it is (no clean-up, no failed.json)."""


def find_config_error(exc: "BaseException | None") -> "ConfigError | None":
    """The ConfigError behind `exc`, also when Hydra's instantiate or a DataLoader worker wrapped it."""
    while exc is not None:
        if isinstance(exc, ConfigError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name), whole, for one-line error reports."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
