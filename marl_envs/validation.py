"""Argument checks shared by every environment of this package.

Every constructor argument of every env, the ``seed`` of ``reset`` and the
``actions`` of ``step`` go through these few functions, so that one bad value
gets one kind of error with one kind of message, naming the argument, the value
it got and what is allowed::

    max_cycles must be an integer >= 1, got nan
    wind_speed must be a finite number > 0, got -1
    render_mode='human3' is not supported; allowed: ['human', 'ansi', 'rgb_array'] or None

* a value of the wrong **type** raises :class:`ArgumentTypeError`, a ``TypeError``
  (a string, None where None is not allowed, a float such as ``2.5`` or ``nan`` for an
  integer count, ``True`` for an integer: bool is not an int here);
* a value of the right type **outside the allowed range** (``-1`` for a count, ``nan``
  or ``inf`` for a real number, an unknown choice) raises ``ValueError``.

``ArgumentTypeError`` also derives from ``ValueError``: callers that have always
caught ``ValueError`` from a bad env argument (command-line tools turning it into
a one-line message) keep working, while ``except TypeError`` sees a type error.

numpy integer / floating / bool scalars are accepted wherever the Python ones are,
and the checks return the plain Python value (``int``, ``float``, ``bool``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (a ``TypeError``; also a ``ValueError``, see above)."""


def show(value: Any) -> str:
    """``value`` as messages print it: numpy scalars as their Python value, text quoted."""
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(value: Any) -> str:
    return type(value).__name__


def is_int(value: Any) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def is_real(value: Any) -> bool:
    """A Python or numpy integer or floating-point number, not a bool."""
    return is_int(value) or isinstance(value, float | np.floating)


def _int_range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"in {low}..{high}"
    if low is not None:
        return f">= {low}"
    if high is not None:
        return f"<= {high}"
    return ""


def check_int(
    name: str,
    value: Any,
    *,
    low: int | None = None,
    high: int | None = None,
    none_ok: bool = False,
    note: str = "",
) -> Any:
    """``value`` as an ``int`` if it is an integer in ``low..high`` (either bound optional).

    ``none_ok``: None is allowed (and returned). ``note`` is added to the message.
    """
    if value is None and none_ok:
        return None
    allowed = " ".join(filter(None, ["an integer", _int_range(low, high)]))
    if none_ok:
        allowed = f"None or {allowed}"
    message = f"{name} must be {allowed}, got {show(value)}" + (f" ({note})" if note else "")
    if not is_int(value):
        raise ArgumentTypeError(f"{message} of type {_type_name(value)}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(message)
    return v


def _float_range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return ""


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    none_ok: bool = False,
    note: str = "",
) -> Any:
    """``value`` as a finite ``float`` in the given range (integers are accepted).

    ``low_open`` / ``high_open`` exclude the bound itself (``> low`` / ``< high``).
    ``none_ok``: None is allowed (and returned). nan and +-inf are always rejected.
    """
    if value is None and none_ok:
        return None
    allowed = " ".join(
        filter(None, ["a finite number", _float_range(low, high, low_open, high_open)]))
    if none_ok:
        allowed = f"None or {allowed}"
    message = f"{name} must be {allowed}, got {show(value)}" + (f" ({note})" if note else "")
    if not is_real(value):
        raise ArgumentTypeError(f"{message} of type {_type_name(value)}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond the float range
        raise ValueError(message) from None
    if not math.isfinite(v):
        raise ValueError(message)
    if low is not None and (v <= low if low_open else v < low):
        raise ValueError(message)
    if high is not None and (v >= high if high_open else v > high):
        raise ValueError(message)
    return v


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is True or False (numpy bools too; 0 and 1 are not bools)."""
    if not isinstance(value, bool | np.bool_):
        raise ArgumentTypeError(
            f"{name} must be True or False, got {show(value)} of type {_type_name(value)}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Iterable[T], *, none_ok: bool = False) -> Any:
    """``value`` if it is one of ``choices`` (or None with ``none_ok``)."""
    options = list(choices)
    if value is None and none_ok:
        return None
    allowed = f"{options}" + (" or None" if none_ok else "")
    if not any(isinstance(value, type(c)) for c in options):
        raise ArgumentTypeError(
            f"{name} must be one of {allowed}, got {show(value)} of type {_type_name(value)}")
    if value not in options:
        raise ValueError(f"{name}={show(value)} is not supported; allowed: {allowed}")
    return value


def check_int_pair(
    name: str, value: Any, *, low: int, high: int | None = None, note: str = ""
) -> tuple[int, int]:
    """``value`` as ``(lo, hi)`` if it is a pair of integers with ``low <= lo <= hi``
    (``<= high`` when given); a list is accepted (JSON configs give lists)."""
    bound = f" <= {high}" if high is not None else ""
    message = (f"{name} must be a pair of integers (lo, hi) with {low} <= lo <= hi{bound}, "
               f"got {show(value)}" + (f" ({note})" if note else ""))
    if not (isinstance(value, tuple | list) and len(value) == 2 and all(map(is_int, value))):
        if isinstance(value, tuple | list) and len(value) == 2:
            raise ArgumentTypeError(message)
        if isinstance(value, tuple | list):
            raise ValueError(message)
        raise ArgumentTypeError(f"{message} of type {_type_name(value)}")
    lo, hi = int(value[0]), int(value[1])
    if not low <= lo <= hi or (high is not None and hi > high):
        raise ValueError(message)
    return lo, hi


def check_int_table(name: str, value: Any, *, low: int = 0) -> np.ndarray:
    """``value`` as a non-empty 2-D int64 array of integers ``>= low`` (a list of rows
    of Python / numpy integers, or an integer numpy array; bools are not integers)."""
    message = f"{name} must be a non-empty 2-D table of integers >= {low}, got {show(value)}"
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iu":
            raise ArgumentTypeError(f"{message} (an array of {value.dtype})")
        if value.ndim != 2 or value.size == 0 or (value < low).any():
            raise ValueError(message)
        return value.astype(np.int64)
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ArgumentTypeError(f"{message} of type {_type_name(value)}")
    if not value or not all(isinstance(row, Sequence) and not isinstance(row, str | bytes)
                            for row in value):
        raise ValueError(f"{message} (not a list of rows)")
    leaves = [v for row in value for v in row]
    wrong = [v for v in leaves if not is_int(v)]
    if wrong:
        raise ArgumentTypeError(f"{message} (entry {show(wrong[0])} of type "
                                f"{_type_name(wrong[0])})")
    if len({len(row) for row in value}) != 1 or not leaves:
        raise ValueError(f"{message} (rows of different or no length)")
    if any(v < low for v in leaves):
        raise ValueError(message)
    try:
        return np.array(value, dtype=np.int64)
    except OverflowError:
        raise ValueError(f"{message} (an entry beyond 64-bit integers)") from None


def check_seed(value: Any, name: str = "seed") -> int | None:
    """A seed: None or an integer >= 0 (Python or numpy; not a bool)."""
    return check_int(name, value, low=0, none_ok=True)


def check_actions(actions: Any) -> Mapping[str, Any]:
    """The argument of ``step``: a mapping agent id -> action."""
    if not isinstance(actions, Mapping):
        raise ArgumentTypeError(
            f"actions must be a dict {{agent id: action}}, got {show(actions)} of type "
            f"{_type_name(actions)}")
    return actions


__all__ = [
    "ArgumentTypeError",
    "check_actions",
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "check_int_pair",
    "check_int_table",
    "check_seed",
    "is_int",
    "is_real",
    "show",
]
