"""The one exception type for bad user input: its message is a single line naming the thing and the fix."""
import re
import shlex


class ConfigError(RuntimeError):
    """Bad data folder, bad checkpoint, model/data mismatch: printed as one line, no traceback."""


class RunFolderRefused(ConfigError):
    """The run folder belongs to another run (locked, or holding one): the refused command leaves it as it is."""


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


def typed_override(key: str, value: object) -> str:
    """`key=value` as it must be typed in a shell for Hydra, for a command that a message suggests."""
    text = str(value)  # a plain value as it is; any other (`=`, `,`, spaces, quotes) quoted for Hydra, then the shell
    if re.fullmatch(r"[A-Za-z0-9_/.+:@%-]+", text):
        return f"{key}={text}"
    # in Hydra's quotes a quote is escaped with a backslash, as are the backslashes before a quote or the closing one
    quoted = re.sub(r'(\\*)("|$)', lambda m: m.group(1) * 2 + ("\\" + m.group(2) if m.group(2) else ""), text)
    return shlex.quote(f'{key}="{quoted}"')  # e.g. 'hydra.run.dir="/out/0_seed=0,trainer.epochs=15"'
