"""Range checks of data options, before any file is read: a bad value is one ConfigError line naming `data.<key>`."""
from __future__ import annotations

from typing import Any, Optional

from ..errors import ConfigError


def check_count(key: str, value: Any, minimum: int = 1, nullable: bool = False, meaning: str = "") -> None:
    """`data.<key>` must be a whole number >= `minimum` (or null when `nullable`; `meaning` says what null does)."""
    if value is None and nullable:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        null = f", or null{f' ({meaning})' if meaning else ''}" if nullable else ""
        raise ConfigError(f"data.{key}={value} is not valid: it must be a whole number >= {minimum}{null}")


def check_fraction(key: str, value: Any, zero: bool = False, meaning: str = "") -> None:
    """`data.<key>` must be a number in (0, 1) (in [0, 1) when `zero` is allowed; `meaning` says what 0 does)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (0 <= value if zero else 0 < value) \
        and value < 1
    if not ok:
        rng = "[0, 1)" if zero else "(0, 1)"
        raise ConfigError(f"data.{key}={value} is not valid: it must be a fraction in {rng}"
                          f"{f' ({meaning})' if meaning else ''}")


def check_mask_threshold(value: Optional[int]) -> None:
    """data.mask_threshold: a pixel value 0..254 of 8-bit masks (foreground is > it), or null for class indices."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 254):
        raise ConfigError(f"data.mask_threshold={value} is not valid: it must be a mask value in 0..254 (foreground "
                          f"is > it; 127 for anti-aliased 0..255 masks), or null to read masks as class indices")
