"""Values as forms and API callers send them: a whole number, a yes or no, and any value echoed short
in a refusal (an API caller can send anything: text for a number, a float, 100 KB of text)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = ["whole_number", "yes_or_no", "echoed"]

_TRUE = frozenset({"true", "yes", "1", "y"})
_FALSE = frozenset({"false", "no", "0", "n"})
# more digits than any count or size mammo takes (and Python refuses int() of over 4300)
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,30}")


def whole_number(value: Any) -> int | None:
    """``value`` as an int where it is a whole number (an int, a float without a fraction, or the text
    of one); else None. A bool is not a number."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
        return int(value.strip())
    return None


def yes_or_no(value: Any) -> bool | None:
    """``value`` as a bool where it says yes or no (a bool, 0 or 1, or yes/no/true/false/y/n/1/0 as
    text, any case); else None (text such as "maybe" is neither: ``bool("false")`` would be True)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def echoed(value: Any, limit: int = 40) -> str:
    """``value`` as a refusal quotes it (its repr), cut to ``limit`` characters."""
    try:
        text = repr(value)
    except ValueError:  # Python gives no repr of an int of over 4300 digits
        return "a number of over 4300 digits"
    return text if len(text) <= limit else text[:limit - 3] + "..."
