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


def typed_override(key: str, value: object) -> str:
    """`key=value` as it must be typed in a shell for Hydra, for a command that a message suggests: a plain value
    (letters, digits, `/._-+:@%`) as it is; any other (a job folder such as `0_seed=0,trainer.epochs=15`, whose `=`
    and `,` are Hydra syntax; spaces; quotes) in Hydra's double quotes, the whole in the shell's single quotes:
    `'hydra.run.dir="/out/0_seed=0,trainer.epochs=15"'`."""
    import re
    import shlex

    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_/.+:@%-]+", text):
        return f"{key}={text}"
    # Hydra's quoted values: a quote is escaped with a backslash, and so are the backslashes before a quote (or
    # before the closing one)
    quoted = re.sub(r'(\\*)("|$)', lambda m: m.group(1) * 2 + ("\\" + m.group(2) if m.group(2) else ""), text)
    return shlex.quote(f'{key}="{quoted}"')
