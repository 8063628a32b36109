"""Field checks of Polygon websocket events (:mod:`m17_platform.sources.polygon_ws`):
each value the decoder reads or an ``m17`` extension carries is checked against what its
column holds, so a bad event is a :class:`WireFormatError` naming the field, never an
overflow, a recursion or a schema error further on.
"""

from __future__ import annotations

import datetime as dt
import math
import reprlib
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 80


def short_repr(value: Any) -> str:
    """``repr`` of a value cut to about 80 characters and 6 levels (safe on any JSON value)."""
    return _REPR.repr(value)


class WireFormatError(ValueError):
    """A frame or event the decoder cannot accept.

    Attributes
    ----------
    kind : str
        A short class of problem for counting, one metric label each. Frames:
        ``too_large``, ``too_deep``, ``invalid_json``, ``not_a_list``. Events:
        ``not_an_object``, ``unknown_event``, ``bad_field`` (missing, wrong type, not
        finite, out of range), ``bad_symbol``, ``unmapped_symbol``, ``bad_extension``,
        ``bad_price`` / ``bad_size`` (negative; zero for a trade), ``not_trading_day``,
        ``outside_session`` (time outside the trade date's accepted window).
    detail : str
        What exactly is wrong, naming the event and field.
    """

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}")


_CONTAINERS = frozenset((list, dict))


def deeper_than(payload: Any, limit: int) -> bool:
    """Whether ``payload`` nests lists / dicts more than ``limit`` levels (walked level by
    level, without recursion)."""
    level = [payload] if type(payload) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list = []
        for node in level:
            below.extend([v for v in (node.values() if type(node) is dict else node) if type(v) in _CONTAINERS])
        level = below
    return False


def _bad(name: str, key: str, value: Any, expected: str) -> WireFormatError:
    return WireFormatError("bad_field", f"{name} event field {key!r} is not {expected}: {short_repr(value)}")


def int_field(ev: Mapping, key: str, name: str, *, required: bool = True, scale: int = 1) -> int | None:
    """Field ``key`` as an integer times ``scale`` (e.g. ms -> ns) that fits int64 (None when
    absent and not required).

    Raises
    ------
    WireFormatError
        ``bad_field``: missing, not an integer (bool, string, fraction, non-finite) or out of range.
    """
    value = ev.get(key)
    if value is None:
        if required:
            raise WireFormatError("bad_field", f"{name} event has no {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            isinstance(value, float) and not value.is_integer()):
        raise _bad(name, key, value, "an integer")
    number = int(value) * scale
    if not INT64_MIN <= number <= INT64_MAX:
        raise _bad(name, key, value, "a 64-bit integer" if scale == 1 else "a time (ms) within int64 nanoseconds")
    return number


def num_field(ev: Mapping, key: str, name: str, *, required: bool = True) -> float | None:
    """Field ``key`` as a finite float (None when absent and not required).

    Raises
    ------
    WireFormatError
        ``bad_field``: missing, not a number, or not finite (also an integer beyond the float range).
    """
    value = ev.get(key)
    if value is None:
        if required:
            raise WireFormatError("bad_field", f"{name} event has no {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(name, key, value, "a finite number")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        number = math.inf
    if not math.isfinite(number):
        raise _bad(name, key, value, "a finite number")
    return number


def code_field(ev: Mapping, key: str, name: str) -> str | None:
    """Field ``key``, an integer or string id, as a string (None when absent); ``bad_field`` otherwise."""
    value = ev.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _bad(name, key, value, "an id")
    return str(value)


def codes_field(ev: Mapping, key: str, name: str) -> list[str] | None:
    """Field ``key``, a list of ids, as strings (None when absent); ``bad_field`` otherwise."""
    value = ev.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int | str) for v in value):
        raise _bad(name, key, value, "a list of ids")
    return [str(v) for v in value]


def extension_value(spec: pa.Field, value: Any) -> Any:
    """``value`` for column ``spec`` as the row holds it.

    Raises
    ------
    ValueError
        Naming what was expected.
    """
    kind = spec.type
    if value is None:
        if spec.nullable:
            return None
        raise ValueError("a value (the column is required)")
    if pa.types.is_integer(kind):
        if isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX:
            return value
        raise ValueError("a 64-bit integer")
    if pa.types.is_floating(kind):
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if math.isfinite(number):
                return number
        raise ValueError("a finite number")
    if pa.types.is_date(kind):
        try:
            return dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            raise ValueError("a date YYYY-MM-DD") from None
    expected = {"string": (str, "a string"), "bool": (bool, "true or false")}.get(str(kind))
    if expected is not None:
        if isinstance(value, expected[0]):
            return value
        raise ValueError(expected[1])
    if pa.types.is_list(kind) and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError("a list of strings" if pa.types.is_list(kind) else f"a {kind}")


# trades must have a positive price and size; quotes and bars no negative value (a zero bid
# or ask is a one-sided quote, as Polygon sends it): (column, kind, zero allowed) per event
_AMOUNTS = {
    "T": (("price", "bad_price", False), ("size", "bad_size", False)),
    "Q": (("bid", "bad_price", True), ("ask", "bad_price", True), ("bid_size", "bad_size", True),
          ("ask_size", "bad_size", True)),
    "A": (*((c, "bad_price", True) for c in ("open", "high", "low", "close", "vwap")), ("volume", "bad_size", True)),
}
_AMOUNTS["AM"] = _AMOUNTS["A"]


def check_amounts(name: str, sym: str, row: Mapping[str, Any]) -> None:
    """Raise ``bad_price`` / ``bad_size`` for a trade's price or size that is not positive,
    or a quote's or bar's value that is negative."""
    for column, kind, zero in _AMOUNTS[name]:
        value = row[column]
        if value is not None and (value < 0 or (value == 0 and not zero)):
            raise WireFormatError(kind, f"{name} event {sym}: {column} {value!r} is not "
                                        f"{'at least 0' if zero else 'positive'}")
