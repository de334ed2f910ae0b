"""Input checks whose error messages stay one short line, whatever the input.

Error messages quote the offending value so that a user sees what was wrong, but a value read
from a file can be absurdly large: a few hundred bytes of YAML with nested aliases ("billion
laughs") expand to hundreds of millions of list items, and ``repr`` of them is a message of
hundreds of megabytes. :func:`short_repr` quotes a bounded excerpt (it never builds the full
``repr`` of a container), and :func:`check_size` refuses a plain-data structure that is far
too big to be a spec before anything walks it element by element. :func:`check_number`,
:func:`check_int` and :func:`check_choice` are the project's one set of parameter checks: each
names the parameter first and says what is allowed, in one line.

>>> short_repr("x" * 1000, limit=20)
"'xxxxxxx...xxxxxxxx'"
>>> short_repr([[1, 2]] * 10**6)
'[[1, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2], ...]'
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Mapping
from itertools import islice

import numpy as np

#: Characters of a value that error messages quote at most.
REPR_LIMIT = 80


def short_repr(value, limit: int = REPR_LIMIT) -> str:
    """``repr(value)`` cut to at most ``limit`` characters (an excerpt ending in ``...``).

    Containers are abbreviated while their repr is built (at most 8 items per level, 3 levels
    deep), so the cost is bounded whatever the size of ``value``.
    """
    r = reprlib.Repr()
    r.maxlevel = 3
    r.maxtuple = r.maxlist = r.maxarray = r.maxdict = r.maxset = r.maxfrozenset = 8
    r.maxdeque = 8
    r.maxstring = r.maxother = max(limit, 8)
    r.maxlong = 40
    try:
        text = r.repr(value)
    except Exception:  # a broken __repr__ must not hide the error being reported
        text = f"<{type(value).__name__}>"
    if len(text) > limit:
        text = text[:max(limit - 3, 1)] + "..."
    return text


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty):
    what a one-line error from the command line or a worker shows."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def clip(text: str, limit: int = 200) -> str:
    """``text`` cut to at most ``limit`` characters (ending in ``...`` when cut)."""
    text = str(text)
    return text if len(text) <= limit else text[:max(limit - 3, 1)] + "..."


def check_size(value, what: str, *, max_values: int = 10_000, max_depth: int = 32,
               max_chars: int = 4096) -> None:
    """Refuse a plain-data structure (JSON/YAML) too big or too deep to be a spec.

    Every element is counted as often as it appears once expanded (a YAML alias counts at each
    use), and the walk stops as soon as a limit is passed, so a "billion laughs" document is
    refused after ``max_values`` steps.

    Args:
        value: The parsed data (mappings, lists, scalars).
        what: What it is, for the message (e.g. ``"spec file spec.yaml"``).
        max_values: Most keys, items and scalars in all.
        max_depth: Most levels of nesting.
        max_chars: Longest string (key or value).

    Raises:
        ValueError: one short line naming ``what`` and the top-level field at fault.
    """
    count = 0
    stack = [(value, 0, None)]
    while stack:
        node, depth, field = stack.pop()
        where = f"{what}: field {short_repr(field, 40)}" if field is not None else what
        count += 1
        if count > max_values:
            raise ValueError(f"{where} is too big: more than {max_values:,} values in all "
                             "(nested lists, or YAML aliases expanding); a spec holds a few "
                             "hundred at most")
        if depth > max_depth:
            raise ValueError(f"{where} is nested more than {max_depth} levels deep")
        if isinstance(node, (str, bytes)):
            if len(node) > max_chars:
                raise ValueError(f"{where} holds a string of {len(node):,} characters (at most "
                                 f"{max_chars:,}): {short_repr(node)}")
        elif isinstance(node, (Mapping, list, tuple, set, frozenset)):
            # Push no more than could still fit under the limit (popped in the given order).
            room = max_values - count - len(stack) + 1
            if isinstance(node, Mapping):
                items = [(x, depth + 1, key if depth == 0 else field)
                         for key, item in islice(node.items(), max(room // 2 + 1, 1))
                         for x in (key, item)]
            else:
                items = [(item, depth + 1, field) for item in islice(node, max(room, 1))]
            stack.extend(reversed(items))


def _bound(value) -> str:
    """A bound as messages show it: integers in full, floats in ``%g`` form."""
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return f"{float(value):g}"


def _allowed(one_sided: str, two_sided: str, low, high, low_open: bool = False,
             high_open: bool = False) -> str:
    """The allowed range as messages say it: ``one_sided`` alone or with ``>``/``>=``/``<``/
    ``<=`` one bound, ``two_sided in [low, high]`` (brackets open or closed) with both."""
    if low is None and high is None:
        return one_sided
    if high is None:
        return f"{one_sided} {'>' if low_open else '>='} {_bound(low)}"
    if low is None:
        return f"{one_sided} {'<' if high_open else '<='} {_bound(high)}"
    return (f"{two_sided} in {'(' if low_open else '['}{_bound(low)}, {_bound(high)}"
            f"{')' if high_open else ']'}")


def _as_real(value) -> float | None:
    """``float(value)`` for a real number (not a bool, not a string), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if not isinstance(value, numbers.Real) and not (
            isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf"):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):  # e.g. an int beyond the float range
        return None


def check_number(name: str, value, low=None, high=None, *, low_open: bool = False,
                 high_open: bool = False, why: str | None = None) -> float:
    """``float(value)`` if it is a real number within the bounds, else a one-line ``ValueError``.

    Bools, strings and other non-numbers are refused, and so are NaN and infinities, except an
    infinity that a closed infinite bound allows (``high=math.inf``). ``None`` means no bound;
    ``low_open``/``high_open`` exclude the bound itself. The message names ``name`` first, then
    the allowed values (``a number in [low, high]``, or ``a finite number > low`` with a lower
    bound only), then ``why`` in parentheses when given, then the value (:func:`short_repr`).

    >>> check_number("lr", 3e-4, 0, 1, low_open=True, high_open=True)
    0.0003
    >>> check_number("beta", -1, 0)
    Traceback (most recent call last):
    ...
    ValueError: beta must be a finite number >= 0, got -1
    >>> check_number("share", float("nan"), 0, 1, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: share must be a number in (0, 1], got nan
    >>> check_number("flag", True)
    Traceback (most recent call last):
    ...
    ValueError: flag must be a finite number, got True
    """
    x = _as_real(value)
    ok = x is not None and not math.isnan(x)
    if ok and math.isinf(x):  # only where a closed infinite bound allows it
        ok = (high == math.inf and not high_open) if x > 0 else (
            low == -math.inf and not low_open)
    if ok and low is not None:
        ok = x > low if low_open else x >= low
    if ok and high is not None:
        ok = x < high if high_open else x <= high
    if ok:
        return x
    if high is not None and high == math.inf and high_open:  # (0, inf) reads "> 0"
        high = None
    if low is not None and low == -math.inf and low_open:
        low = None
    allowed = _allowed("a finite number", "a number", low, high, low_open, high_open)
    reason = f" ({why})" if why else ""
    raise ValueError(f"{name} must be {allowed}{reason}, got {short_repr(value)}")


def check_int(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """``int(value)`` if it is an integer in ``[low, high]``, else a one-line ``ValueError``.

    Python and numpy integers are accepted; bools and floats are refused, whole floats such as
    ``3.0`` included (a count given as a float is most often a mistake). ``None`` means no
    bound. The message names ``name`` first: ``an integer >= low`` with a lower bound only,
    ``an integer in [low, high]`` with both.

    >>> check_int("workers", 4, 1)
    4
    >>> check_int("workers", 0, 1)
    Traceback (most recent call last):
    ...
    ValueError: workers must be an integer >= 1, got 0
    >>> check_int("days", 2.0, 1, 10)
    Traceback (most recent call last):
    ...
    ValueError: days must be an integer in [1, 10], got 2.0
    """
    ok = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    ok = ok and (low is None or value >= low) and (high is None or value <= high)
    if ok:
        return int(value)
    allowed = _allowed("an integer", "an integer", low, high)
    raise ValueError(f"{name} must be {allowed}, got {short_repr(value)}")


def check_choice(name: str, value, choices):
    """``value`` if it is one of ``choices`` (compared with ``==``), else a one-line
    ``ValueError`` naming ``name`` and the choices.

    >>> check_choice("mechanism", "gsp", ("gsp", "vcg"))
    'gsp'
    >>> check_choice("mechanism", "english", ("gsp", "vcg"))
    Traceback (most recent call last):
    ...
    ValueError: mechanism must be one of ('gsp', 'vcg'), got 'english'
    """
    try:
        ok = value in choices
    except (TypeError, ValueError):  # unhashable value and a set of choices, an array...
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {short_repr(choices, 200)}, got "
                         f"{short_repr(value)}")
    return value
