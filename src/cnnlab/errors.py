"""The one exception type for bad user input: its message is a single line naming the thing and the fix."""


class ConfigError(RuntimeError):
    """Bad data folder, bad checkpoint, model/data mismatch: printed as one line, no traceback."""
