"""Which option contracts the capture subscribes: the 0DTE strikes around the money.

The SPYMASTER monitor tracked ATM ± 3 strikes of SPY's 0DTE chain, calls and puts,
re-centred every 60 s or when SPY moved more than $0.50; M17 refreshed its contract
list from a snapshot and reported the seconds since. :class:`StrikeManager` keeps
that policy in one place, with every number from
:class:`~m17_platform.settings.CaptureSettings`:

* the listed contracts come from the contract reference (refreshed by the capture,
  wall clock every ``contract_refresh_seconds``);
* the window is the listed strike nearest the underlying's price (ties: the lower
  strike) and ``strikes_each_side`` listed strikes above and below it, both rights;
* it is re-centred when the price is more than ``recenter_dollars`` from the price it
  was centred on, or ``recenter_seconds`` of *event time* after the last centring, so
  a replay re-centres at the same events at any speed.

It is plain logic: no sockets, no clock of its own.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from m17_platform.settings import DEFAULT, CaptureSettings
from m17_platform.symbols import parse_occ_symbol

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class WindowChange:
    """A new subscription window: the contracts to add and to drop, and why.

    add / remove : OCC symbols; center : the price the window is centred on (dollars);
    atm_strike : the strike nearest it (dollars); reason : ``first``, ``moved``,
    ``timer`` or ``contracts``.
    """

    add: frozenset[str]
    remove: frozenset[str]
    window: frozenset[str]
    center: float
    atm_strike: float
    reason: str


class StrikeManager:
    """The ATM ± N 0DTE window of one underlying.

    Parameters
    ----------
    underlying : ticker whose price centres the window
    settings : CaptureSettings
        ``strikes_each_side`` (count), ``recenter_dollars`` ($), ``recenter_seconds`` (s).
    """

    def __init__(self, underlying: str, settings: CaptureSettings = DEFAULT.capture) -> None:
        self.underlying = underlying
        self.settings = settings
        self.expiration: dt.date | None = None
        self._by_strike: dict[float, set[str]] = {}
        self._strikes: list[float] = []
        self.window: frozenset[str] = frozenset()
        self.center: float | None = None
        self.centered_at_ns: int | None = None
        self.price: float | None = None
        self.price_ts_ns: int | None = None

    def set_contracts(self, symbols: Iterable[str], expiration: dt.date) -> WindowChange | None:
        """Replace the listed 0DTE contracts (those of other expirations are ignored) and
        re-centre on the last price if the window changes.

        Raises
        ------
        ValueError
            For a symbol that is not an OCC option symbol (naming it).
        """
        by_strike: dict[float, set[str]] = {}
        for symbol in symbols:
            oid = parse_occ_symbol(symbol)
            if oid.expiration == expiration:
                by_strike.setdefault(oid.strike, set()).add(symbol)
        self.expiration = expiration
        self._by_strike = by_strike
        self._strikes = sorted(by_strike)
        if self.price is None:
            return None
        return self._recenter(self.price, self.price_ts_ns or 0, "contracts")

    def contracts(self) -> int:
        """How many listed contracts the window chooses from."""
        return sum(len(v) for v in self._by_strike.values())

    def select(self, price: float) -> tuple[frozenset[str], float | None]:
        """The window around ``price`` (dollars) and its ATM strike (None if nothing is listed)."""
        if not self._strikes:
            return frozenset(), None
        i = bisect.bisect_left(self._strikes, price)
        if i == len(self._strikes) or (i > 0 and price - self._strikes[i - 1] <= self._strikes[i] - price):
            i -= 1
        n = self.settings.strikes_each_side
        chosen = self._strikes[max(0, i - n): i + n + 1]
        return frozenset(s for k in chosen for s in self._by_strike[k]), self._strikes[i]

    def on_price(self, price: float, ts_ns: int) -> WindowChange | None:
        """Feed the underlying's latest price (dollars) at event time ``ts_ns`` (ns);
        returns the change when the window is re-centred and differs."""
        self.price, self.price_ts_ns = price, ts_ns
        if self.center is None:
            return self._recenter(price, ts_ns, "first")
        if abs(price - self.center) > self.settings.recenter_dollars:
            return self._recenter(price, ts_ns, "moved")
        if ts_ns - (self.centered_at_ns or ts_ns) >= self.settings.recenter_seconds * NS_PER_S:
            return self._recenter(price, ts_ns, "timer")
        return None

    def _recenter(self, price: float, ts_ns: int, reason: str) -> WindowChange | None:
        window, atm = self.select(price)
        if atm is None:
            return None
        self.center, self.centered_at_ns = price, ts_ns
        if window == self.window:
            return None
        change = WindowChange(window - self.window, self.window - window, window, price, atm, reason)
        self.window = window
        return change
