"""Input checks whose error messages stay one short line, whatever the input.

Error messages quote the offending value so that a user sees what was wrong, but a value read
from a file can be absurdly large: a few hundred bytes of YAML with nested aliases ("billion
laughs") expand to hundreds of millions of list items, and ``repr`` of them is a message of
hundreds of megabytes. :func:`short_repr` quotes a bounded excerpt (it never builds the full
``repr`` of a container), and :func:`check_size` refuses a plain-data structure that is far
too big to be a spec before anything walks it element by element.

>>> short_repr("x" * 1000, limit=20)
"'xxxxxxx...xxxxxxxx'"
>>> short_repr([[1, 2]] * 10**6)
'[[1, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2], ...]'
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from itertools import islice

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
