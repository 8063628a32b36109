"""OCC / OSI option symbols, in Polygon's spelling (``O:SPY251110C00685000``).

The OSI symbology (OCC, "Options Symbology Initiative", 2010) is root + YYMMDD +
C/P + strike x 1000 as 8 digits. Polygon/Massive prefixes ``O:`` and does not pad the
root; we follow Polygon so symbols join with its feeds unchanged.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_OCC = re.compile(r"^O:(?P<root>[A-Z0-9.]{1,6})(?P<yymmdd>\d{6})(?P<right>[CP])(?P<strike>\d{8})$")
_UNDERLYING = re.compile(r"^[A-Z][A-Z0-9]*(?:[.-][A-Z0-9]+)?$")
UNDERLYING_MAX_LEN = 8
UNDERLYING_RULE = (
    f"1-{UNDERLYING_MAX_LEN} characters: a letter, then letters or digits, optionally one '.' or '-' "
    "and a class suffix (SPY, BRK.B, BF-B, VIX; indices without the caret)"
)


@dataclass(frozen=True)
class OptionId:
    """A contract's identity: root, expiration (date), right ('C'/'P'), strike (dollars)."""

    root: str
    expiration: dt.date
    right: str
    strike: float


def occ_symbol(root: str, expiration: dt.date, right: str, strike: float) -> str:
    """Build ``O:ROOTYYMMDD[C|P]SSSSSSSS`` (strike in thousandths of a dollar, 8 digits).

    Raises
    ------
    ValueError
        If ``right`` is not 'C'/'P', the strike is not positive or has more than
        three decimals, or it does not fit in 8 digits.
    """
    right = right.upper()
    if right not in ("C", "P"):
        raise ValueError(f"right must be 'C' or 'P', got {right!r}")
    milli = round(strike * 1000)
    if strike <= 0 or abs(milli - strike * 1000) > 1e-6 or milli >= 10**8:
        raise ValueError(f"strike {strike!r} cannot be written as an OSI strike")
    return f"O:{root.upper()}{expiration:%y%m%d}{right}{milli:08d}"


def parse_occ_symbol(symbol: str) -> OptionId:
    """Parse a Polygon-style OCC symbol; ``ValueError`` names the symbol if it is not one."""
    m = _OCC.match(symbol)
    if m is None:
        raise ValueError(f"not an OCC option symbol: {symbol!r}")
    yymmdd = m["yymmdd"]
    expiration = dt.date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
    return OptionId(m["root"], expiration, m["right"], int(m["strike"]) / 1000.0)


def validate_underlying(name: str) -> str:
    """An underlying name as a partition key: stripped, upper-cased and checked as a ticker.

    The rule (:data:`UNDERLYING_RULE`): 1 to 8 characters; a letter A-Z first, then
    letters or digits, optionally one ``.`` or ``-`` followed by a share-class suffix of
    letters or digits. This admits US equity and ETF tickers (``SPY``, ``QQQ``,
    ``BRK.B``, ``BF-B``) and index symbols written without a caret or vendor prefix
    (``SPX``, ``VIX``, ``NDX``), and refuses what would break a partition key or a hive
    path: empty names, spaces, ``|`` (the CLI's date|underlying separator), ``/``,
    ``=``, ``^``, ``:`` and a leading digit.

    Parameters
    ----------
    name : str
        As typed (any case, surrounding blanks allowed).

    Returns
    -------
    str
        The canonical name, e.g. ``"brk.b" -> "BRK.B"``.

    Raises
    ------
    ValueError
        With one line naming the name and the rule it breaks.
    """
    canonical = str(name).strip().upper()
    if not canonical:
        raise ValueError(f"underlying {name!r} is empty; expected {UNDERLYING_RULE}")
    if len(canonical) > UNDERLYING_MAX_LEN or _UNDERLYING.match(canonical) is None:
        raise ValueError(f"underlying {name!r} is not a ticker; expected {UNDERLYING_RULE}")
    return canonical
