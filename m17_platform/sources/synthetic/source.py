"""``SyntheticSource``: the simulator behind the :class:`m17_platform.sources.base.Source`
protocol, streaming each raw table in chunks, with its ground truth."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import polars as pl

from m17_platform import schemas
from m17_platform.lake import PartitionRef
from m17_platform.settings import DEFAULT, RatesSettings, SessionSettings, SyntheticSettings, UniverseSettings
from m17_platform.sources import rates as rates_source
from m17_platform.sources.base import TableChunk
from m17_platform.sources.synthetic import _kernels
from m17_platform.sources.synthetic._common import ticks_to_price, validate
from m17_platform.sources.synthetic.chain import KINDS, Chain, ChainGenerator, build_chain
from m17_platform.sources.synthetic.underlying import (
    FuturesDay,
    Prints,
    UnderlyingDay,
    futures_day,
    stock_prints,
    underlying_day,
)

TABLES = (
    "option_contracts", "option_quotes", "option_trades", "stock_quotes", "stock_trades",
    "futures_mbp10", "futures_trades", "rates",
)
"""Raw tables the synthetic source fills."""

TRUTH_SCHEMAS: dict[str, pl.Schema] = {
    "option_trades": pl.Schema({
        "sequence": pl.Int64, "ts_ns": pl.Int64, "option_symbol": pl.String, "trade_id": pl.String,
        "side": pl.String, "iv": pl.Float64, "underlying_price": pl.Float64, "t_years": pl.Float64,
        "theo": pl.Float64, "quote_sequence": pl.Int64, "kind": pl.String, "order_id": pl.Int64,
        "canceled": pl.Boolean,
    }),
    "option_quotes": pl.Schema({
        "sequence": pl.Int64, "ts_ns": pl.Int64, "option_symbol": pl.String, "iv": pl.Float64,
        "underlying_price": pl.Float64, "t_years": pl.Float64, "theo": pl.Float64,
    }),
    "stock_trades": pl.Schema({
        "sequence": pl.Int64, "ts_ns": pl.Int64, "trade_id": pl.String, "side": pl.String,
        "underlying_price": pl.Float64, "efficient_price": pl.Float64, "quote_sequence": pl.Int64,
    }),
    "stock_quotes": pl.Schema({"sequence": pl.Int64, "ts_ns": pl.Int64, "efficient_price": pl.Float64}),
    "futures_trades": pl.Schema({
        "sequence": pl.Int64, "ts_ns": pl.Int64, "trade_id": pl.String, "side": pl.String,
        "underlying_price": pl.Float64, "fair_price": pl.Float64, "quote_sequence": pl.Int64,
    }),
    "futures_mbp10": pl.Schema({
        "sequence": pl.Int64, "ts_ns": pl.Int64, "underlying_price": pl.Float64, "fair_price": pl.Float64,
    }),
    "option_contracts": pl.Schema({
        "option_symbol": pl.String, "expiration": pl.Date, "strike": pl.Float64, "right": pl.String,
        "expiry_ts_ns": pl.Int64, "quote_count": pl.Int64, "trade_count": pl.Int64, "open_price": pl.Float64,
        "atm_vol_open": pl.Float64, "rate": pl.Float64, "dividend_yield": pl.Float64, "ssvi_rho": pl.Float64,
        "ssvi_eta": pl.Float64, "ssvi_gamma": pl.Float64,
    }),
}
"""Columns and dtypes of :meth:`SyntheticSource.ground_truth` per table.

Units: ``ts_ns`` ns since epoch UTC; prices dollars (``underlying_price`` the underlying's
NBBO mid prevailing at the row, at or before; ``efficient_price`` the latent price;
``fair_price`` the futures fair price ``ratio x underlying_price``; ``theo`` the option's
BSM price at ``iv``); ``iv`` annualised decimal (the SSVI surface vol); ``t_years`` years
to the expiry instant; ``side`` ``B`` buyer- / ``S`` seller-initiated; ``quote_sequence``
the ``sequence`` of the quote (book row) prevailing before the print; ``kind`` single /
sweep / block; ``order_id`` numbers the orders (a sweep's legs share one).
"""

_DATE = pl.Date


def _rechunk(parts: Iterator[dict[str, np.ndarray]], rows: int) -> Iterator[dict[str, np.ndarray]]:
    """Re-cut a stream of column batches (equal-length numpy arrays) into batches of
    exactly ``rows`` rows (the last may be shorter), without changing the row order."""
    buf: list[dict[str, np.ndarray]] = []
    buffered = 0
    for part in parts:
        n = len(next(iter(part.values())))
        if not n:
            continue
        buf.append(part)
        buffered += n
        if buffered < rows:
            continue
        merged = buf[0] if len(buf) == 1 else {k: np.concatenate([p[k] for p in buf]) for k in buf[0]}
        pos = 0
        while buffered - pos >= rows:
            yield {k: v[pos:pos + rows] for k, v in merged.items()}
            pos += rows
        rest = {k: v[pos:] for k, v in merged.items()}
        buffered -= pos
        buf = [rest] if buffered else []
    if buffered:
        yield buf[0] if len(buf) == 1 else {k: np.concatenate([p[k] for p in buf]) for k in buf[0]}


class SyntheticSource:
    """A seeded, deterministic simulator of one regular session per partition.

    Fills every raw table except ``option_vendor_greeks``: the underlying's quotes and
    prints, its futures proxy's MBP-10 book and prints (ES for SPY, ``ES = SPY x 10``),
    a 0DTE + weekly option chain quoted off an SSVI surface with prints of known aggressor,
    the contracts and the rates. See :mod:`m17_platform.sources.synthetic` for the model.

    Any underlying with a ``SyntheticSettings.start_price`` can be simulated (SPY by
    default); others raise ``ValueError``. Futures tables are filled only for an
    underlying some futures root serves (``UniverseSettings.futures_proxies``); for the
    others they yield nothing.

    Parameters
    ----------
    settings : SyntheticSettings
        Seed, sizes and model parameters.
    chunk_rows : int
        Most rows per yielded chunk (default ``IngestSettings.chunk_rows``).
    rates : RatesSettings
        Risk-free rate and dividend yields the chain is priced with (and the ``rates`` table).
    sessions : SessionSettings
        Exchange calendar (session open / close, expiry instants, year length).
    universe : UniverseSettings
        Futures proxies and price ratios, European roots, contract multiplier.

    Attributes
    ----------
    name : str
        ``synthetic:seed=<seed>``, recorded in partition manifests.

    Raises
    ------
    ValueError
        Settings out of range (:func:`._common.validate`) or ``chunk_rows < 1``.
    """

    def __init__(
        self,
        settings: SyntheticSettings = DEFAULT.synthetic,
        *,
        chunk_rows: int = DEFAULT.ingest.chunk_rows,
        rates: RatesSettings = DEFAULT.rates,
        sessions: SessionSettings = DEFAULT.sessions,
        universe: UniverseSettings = DEFAULT.universe,
    ) -> None:
        validate(settings)
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.settings = settings
        self.chunk_rows = int(chunk_rows)
        self.rates = rates
        self.sessions = sessions
        self.universe = universe
        self.name = f"{settings.source_prefix}:seed={settings.seed}"
        self._cache: dict[tuple[str, PartitionRef], object] = {}

    # --- Source protocol -------------------------------------------------------------

    def tables(self) -> tuple[str, ...]:
        """The raw tables this source fills."""
        return TABLES

    def chunks(self, table: str, ref: PartitionRef) -> Iterator[TableChunk]:
        """Rows of raw table ``table`` for partition ``ref``, at most ``chunk_rows`` per chunk.

        Rows come in the lake's sort order; ``sequence`` numbers the table's rows of the
        partition from 0 in that order, so the rows do not depend on ``chunk_rows``.
        Each chunk's ``stats`` is ``{"rows": n}`` (plus ``canceled_prints`` for trade tables).

        Raises
        ------
        ValueError
            Unknown table, or an underlying without a start price.
        CalendarError
            If ``ref.trade_date`` is not an exchange session.
        """
        self._check(table, ref)
        builders: dict[str, Callable[[PartitionRef], Iterator[pl.DataFrame]]] = {
            "option_contracts": self._contracts_frames,
            "option_quotes": self._option_quote_frames,
            "option_trades": self._option_trade_frames,
            "stock_quotes": self._stock_quote_frames,
            "stock_trades": self._stock_trade_frames,
            "futures_mbp10": self._mbp_frames,
            "futures_trades": self._futures_trade_frames,
            "rates": self._rates_frames,
        }
        for frame in builders[table](ref):
            stats = {"rows": frame.height}
            if "canceled" in frame.columns:
                stats["canceled_prints"] = int(frame.get_column("canceled").sum())
            yield TableChunk(table, frame, stats)

    # --- ground truth ----------------------------------------------------------------

    def ground_truth(self, table: str, ref: PartitionRef) -> pl.DataFrame | None:
        """The truth behind ``table``'s rows of ``ref``, one row per data row (columns
        :data:`TRUTH_SCHEMAS`), or None for tables without truth (``rates``) and for
        ``option_quotes``, whose truth is as long as the table: stream it with
        :meth:`ground_truth_chunks`.

        Keys: ``sequence`` (and ``trade_id`` for prints, ``option_symbol`` for contracts)
        equal the data rows'. Generated by the same streams as the data, so it matches
        the rows of any run with the same settings.

        Raises
        ------
        ValueError, CalendarError
            As :meth:`chunks`.
        """
        self._check(table, ref)
        if table in ("rates", "option_quotes"):
            return None
        frames = list(self.ground_truth_chunks(table, ref))
        if not frames:
            return pl.DataFrame(schema=TRUTH_SCHEMAS[table])
        return pl.concat(frames, rechunk=True)

    def ground_truth_chunks(self, table: str, ref: PartitionRef) -> Iterator[pl.DataFrame]:
        """:meth:`ground_truth` of ``table`` in chunks of at most ``chunk_rows`` rows
        (``option_quotes`` included); yields nothing for ``rates``."""
        self._check(table, ref)
        if table == "option_contracts":
            yield from self._sliced(self._contract_truth(ref))
        elif table == "option_quotes":
            yield from self._option_quote_truth(ref)
        elif table == "option_trades":
            yield from self._option_trade_truth(ref)
        elif table in ("stock_quotes", "stock_trades", "futures_mbp10", "futures_trades"):
            frame = getattr(self, f"_{table}_truth")(ref)
            if frame is not None:
                yield from self._sliced(frame)

    # --- generated state (cached per partition) -------------------------------------------

    def _check(self, table: str, ref: PartitionRef) -> None:
        if table not in TABLES:
            raise ValueError(f"the synthetic source does not fill table {table!r}; it fills {list(TABLES)}")
        if ref.underlying not in self.settings.start_price:
            raise ValueError(
                f"the synthetic source has no start price for underlying {ref.underlying!r}; "
                f"configured: {sorted(self.settings.start_price)} (SyntheticSettings.start_price)"
            )

    def _cached(self, kind: str, ref: PartitionRef, make: Callable[[], object]):
        key = (kind, ref)
        if key not in self._cache:
            for old in [k for k in self._cache if k[0] == kind]:
                del self._cache[old]  # one partition per kind: memory stays bounded
            self._cache[key] = make()
        return self._cache[key]

    def underlying(self, ref: PartitionRef) -> UnderlyingDay:
        """The underlying's session arrays for ``ref`` (cached)."""
        return self._cached("day", ref, lambda: underlying_day(ref, self.settings, self.sessions))

    def chain(self, ref: PartitionRef) -> Chain:
        """The option chain of ``ref`` with its per-contract activity (cached)."""
        rate = float(self.rates.risk_free_rate)
        q = float(self.rates.dividend_yield.get(ref.underlying, 0.0))
        return self._cached("chain", ref, lambda: build_chain(self.underlying(ref), self.settings, self.sessions, rate, q))

    def futures(self, ref: PartitionRef) -> FuturesDay | None:
        """The futures proxy's session of ``ref`` (cached), or None without a proxy."""
        return self._cached("futures", ref, lambda: futures_day(self.underlying(ref), self.settings, self.universe))

    def _generator(self, ref: PartitionRef) -> ChainGenerator:
        return ChainGenerator(self.underlying(ref), self.chain(ref), self.settings, self.sessions)

    def _sliced(self, frame: pl.DataFrame) -> Iterator[pl.DataFrame]:
        for start in range(0, frame.height, self.chunk_rows):
            yield frame.slice(start, self.chunk_rows)

    def _source(self, table: str) -> str:
        return f"{self.settings.source_prefix}.{table}"

    def _trade_ids(self, ref: PartitionRef, seq: np.ndarray) -> pl.Series:
        """Unique print ids ``YYYYMMDD-<sequence>`` (unique within a table and across days)."""
        prefix = f"{ref.trade_date:%Y%m%d}-"
        return pl.select(pl.concat_str([pl.lit(prefix), pl.Series(seq).cast(pl.String)])).to_series().alias("trade_id")

    # --- options ---------------------------------------------------------------------

    def _option_identity(self, ref: PartitionRef, chain: Chain, idx: np.ndarray) -> dict[str, pl.Series]:
        """``option_symbol`` .. ``right`` columns for rows of contracts ``idx`` (gathered from
        per-contract constants, no per-row string formatting)."""
        n = idx.size
        return {
            "option_symbol": pl.Series(chain.symbols, dtype=pl.String).gather(idx),
            "underlying": pl.repeat(ref.underlying, n, eager=True, dtype=pl.String),
            "root": pl.repeat(chain.root, n, eager=True, dtype=pl.String),
            "expiration": pl.Series(chain.expiration, dtype=_DATE).gather(idx),
            "strike": pl.Series(chain.strike[idx], dtype=pl.Float64),
            "right": pl.Series(np.where(chain.is_call, "C", "P").tolist(), dtype=pl.String).gather(idx),
        }

    def _contracts_frames(self, ref: PartitionRef) -> Iterator[pl.DataFrame]:
        chain = self.chain(ref)
        idx = np.arange(len(chain))
        style = "E" if chain.root in self.universe.european_roots else "A"
        frame = pl.DataFrame({
            **self._option_identity(ref, chain, idx),
            "multiplier": pl.repeat(self.universe.default_multiplier, len(chain), eager=True, dtype=pl.Int64),
            "exercise_style": pl.repeat(style, len(chain), eager=True, dtype=pl.String),
            "expiry_ts_ns": pl.Series(chain.expiry_ns, dtype=pl.Int64),
            "source": pl.repeat(self._source("option_contracts"), len(chain), eager=True, dtype=pl.String),
        })
        yield from self._sliced(frame)

    def _contract_truth(self, ref: PartitionRef) -> pl.DataFrame:
        chain, s = self.chain(ref), self.settings
        n = len(chain)
        const = {name: pl.repeat(float(v), n, eager=True, dtype=pl.Float64) for name, v in (
            ("open_price", chain.open_price), ("rate", chain.rate), ("dividend_yield", chain.dividend_yield),
            ("ssvi_rho", s.ssvi_rho), ("ssvi_eta", s.ssvi_eta), ("ssvi_gamma", s.ssvi_gamma))}
        ident = self._option_identity(ref, chain, np.arange(n))
        return pl.DataFrame({
            "option_symbol": ident["option_symbol"], "expiration": ident["expiration"], "strike": ident["strike"],
            "right": ident["right"], "expiry_ts_ns": chain.expiry_ns, "quote_count": chain.quote_counts,
            "trade_count": chain.trade_counts, "open_price": const["open_price"], "atm_vol_open": chain.atm_vol_open,
            "rate": const["rate"], "dividend_yield": const["dividend_yield"], "ssvi_rho": const["ssvi_rho"],
            "ssvi_eta": const["ssvi_eta"], "ssvi_gamma": const["ssvi_gamma"],
        }, schema=TRUTH_SCHEMAS["option_contracts"])

    def _quote_parts(self, ref: PartitionRef, with_truth: bool) -> Iterator[dict[str, np.ndarray]]:
        gen = self._generator(ref)
        for i in range(len(gen.chain)):
            q = gen.quotes(i)
            part = {"ts": q.ts, "contract": np.full(q.ts.size, i, dtype=np.int64)}
            if with_truth:
                part.update(spot=q.spot, t_years=q.t_years, sigma=q.sigma, theo=q.theo)
            else:
                part.update(bid_u=q.bid_u, ask_u=q.ask_u, bid_size=q.bid_size, ask_size=q.ask_size,
                            bid_ex=q.bid_ex, ask_ex=q.ask_ex)
            yield part

    def _option_quote_frames(self, ref: PartitionRef) -> Iterator[pl.DataFrame]:
        chain, s = self.chain(ref), self.settings
        exchanges = pl.Series(list(s.option_exchanges), dtype=pl.String)
        seq = 0
        for c in _rechunk(self._quote_parts(ref, False), self.chunk_rows):
            n = c["ts"].size
            yield pl.DataFrame({
                "ts_ns": pl.Series(c["ts"], dtype=pl.Int64),
                "sequence": pl.Series(np.arange(seq, seq + n, dtype=np.int64)),
                **self._option_identity(ref, chain, c["contract"]),
                "bid": ticks_to_price(c["bid_u"], s.option_tick_small),
                "bid_size": pl.Series(c["bid_size"], dtype=pl.Int64),
                "ask": ticks_to_price(c["ask_u"], s.option_tick_small),
                "ask_size": pl.Series(c["ask_size"], dtype=pl.Int64),
                "bid_exchange": exchanges.gather(c["bid_ex"]),
                "ask_exchange": exchanges.gather(c["ask_ex"]),
                "source": pl.repeat(self._source("option_quotes"), n, eager=True, dtype=pl.String),
            })
            seq += n

    def _option_quote_truth(self, ref: PartitionRef) -> Iterator[pl.DataFrame]:
        chain = self.chain(ref)
        seq = 0
        for c in _rechunk(self._quote_parts(ref, True), self.chunk_rows):
            n = c["ts"].size
            yield pl.DataFrame({
                "sequence": np.arange(seq, seq + n, dtype=np.int64), "ts_ns": c["ts"],
                "option_symbol": pl.Series(chain.symbols, dtype=pl.String).gather(c["contract"]),
                "iv": c["sigma"], "underlying_price": c["spot"], "t_years": c["t_years"], "theo": c["theo"],
            }, schema=TRUTH_SCHEMAS["option_quotes"])
            seq += n

    def _trade_parts(self, ref: PartitionRef, with_truth: bool) -> Iterator[dict[str, np.ndarray]]:
        gen = self._generator(ref)
        chain = gen.chain
        for i in range(len(chain)):
            if not chain.trade_counts[i]:
                continue
            q = gen.quotes(i)
            t = gen.trades(i, q)
            part = {"ts": t["ts"], "contract": np.full(t["ts"].size, i, dtype=np.int64), "buy": t["buy"],
                    "kind": t["kind"], "canceled": t["canceled"]}
            if with_truth:
                spot, t_years, sigma, theo = gen.model(i, t["ts"])
                part.update(spot=spot, t_years=t_years, sigma=sigma, theo=theo,
                            quote_seq=chain.quote_offsets[i] + t["quote_index"],
                            order_id=chain.trade_offsets[i] + t["order"])
            else:
                part.update(price_u=t["price_u"], size=t["size"], exchange=t["exchange"])
            yield part

    def _option_trade_frames(self, ref: PartitionRef) -> Iterator[pl.DataFrame]:
        chain, s = self.chain(ref), self.settings
        exchanges = pl.Series(list(s.option_exchanges), dtype=pl.String)
        conditions = pl.Series([[s.option_condition_regular], [s.option_condition_sweep], [s.option_condition_block]],
                               dtype=pl.List(pl.String))
        seq = 0
        for c in _rechunk(self._trade_parts(ref, False), self.chunk_rows):
            n = c["ts"].size
            sequence = np.arange(seq, seq + n, dtype=np.int64)
            yield pl.DataFrame({
                "ts_ns": pl.Series(c["ts"], dtype=pl.Int64),
                "sequence": pl.Series(sequence),
                **self._option_identity(ref, chain, c["contract"]),
                "price": ticks_to_price(c["price_u"], s.option_tick_small),
                "size": pl.Series(c["size"], dtype=pl.Int64),
                "exchange": exchanges.gather(c["exchange"]),
                "conditions": conditions.gather(c["kind"]),
                "trade_id": self._trade_ids(ref, sequence),
                "canceled": pl.Series(c["canceled"], dtype=pl.Boolean),
                "source": pl.repeat(self._source("option_trades"), n, eager=True, dtype=pl.String),
            })
            seq += n

    def _option_trade_truth(self, ref: PartitionRef) -> Iterator[pl.DataFrame]:
        chain = self.chain(ref)
        kinds = pl.Series(list(KINDS), dtype=pl.String)
        seq = 0
        for c in _rechunk(self._trade_parts(ref, True), self.chunk_rows):
            n = c["ts"].size
            sequence = np.arange(seq, seq + n, dtype=np.int64)
            yield pl.DataFrame({
                "sequence": sequence, "ts_ns": c["ts"],
                "option_symbol": pl.Series(chain.symbols, dtype=pl.String).gather(c["contract"]),
                "trade_id": self._trade_ids(ref, sequence), "side": np.where(c["buy"], "B", "S"),
                "iv": c["sigma"], "underlying_price": c["spot"], "t_years": c["t_years"], "theo": c["theo"],
                "quote_sequence": c["quote_seq"], "kind": kinds.gather(c["kind"]), "order_id": c["order_id"],
                "canceled": c["canceled"],
            }, schema=TRUTH_SCHEMAS["option_trades"])
            seq += n

    # --- underlying ------------------------------------------------------------------

    def _stock_quote_frames(self, ref: PartitionRef) -> Iterator[pl.DataFrame]:
        day, s = self.underlying(ref), self.settings
        exchanges = pl.Series(list(s.stock_exchanges), dtype=pl.String)
        for start in range(0, day.ts.size, self.chunk_rows):
            sl = slice(start, start + self.chunk_rows)
            n = day.ts[sl].size
            yield pl.DataFrame({
                "ts_ns": pl.Series(day.ts[sl], dtype=pl.Int64),
                "sequence": pl.Series(np.arange(start, start + n, dtype=np.int64)),
                "symbol": pl.repeat(ref.underlying, n, eager=True, dtype=pl.String),
                "underlying": pl.repeat(ref.underlying, n, eager=True, dtype=pl.String),
                "bid": ticks_to_price(day.bid_ticks[sl], day.tick),
                "bid_size": pl.Series(day.bid_size[sl], dtype=pl.Int64),
                "ask": ticks_to_price(day.ask_ticks[sl], day.tick),
                "ask_size": pl.Series(day.ask_size[sl], dtype=pl.Int64),
                "bid_exchange": exchanges.gather(day.bid_ex[sl]),
                "ask_exchange": exchanges.gather(day.ask_ex[sl]),
                "source": pl.repeat(self._source("stock_quotes"), n, eager=True, dtype=pl.String),
            })

    def _stock_quotes_truth(self, ref: PartitionRef) -> pl.DataFrame:
        day = self.underlying(ref)
        return pl.DataFrame({"sequence": np.arange(day.ts.size, dtype=np.int64), "ts_ns": day.ts,
                             "efficient_price": day.efficient}, schema=TRUTH_SCHEMAS["stock_quotes"])

    def _stock_prints(self, ref: PartitionRef) -> Prints:
        return self._cached("stock_prints", ref, lambda: stock_prints(self.underlying(ref), self.settings))

    def _stock_trade_frames(self, ref: PartitionRef) -> Iterator[pl.DataFrame]:
        p, s = self._stock_prints(ref), self.settings
        n = p.ts.size
        seq = np.arange(n, dtype=np.int64)
        frame = pl.DataFrame({
            "ts_ns": pl.Series(p.ts, dtype=pl.Int64),
            "sequence": pl.Series(seq),
            "symbol": pl.repeat(ref.underlying, n, eager=True, dtype=pl.String),
            "underlying": pl.repeat(ref.underlying, n, eager=True, dtype=pl.String),
            "price": pl.Series(p.price, dtype=pl.Float64),
            "size": pl.Series(p.size, dtype=pl.Int64),
            "exchange": pl.Series(list(s.stock_exchanges), dtype=pl.String).gather(p.exchange),
            "conditions": pl.Series([[s.stock_condition_regular], [s.stock_condition_odd_lot]],
                                    dtype=pl.List(pl.String)).gather(p.condition),
            "trade_id": self._trade_ids(ref, seq),
            "canceled": pl.Series(np.zeros(n, dtype=bool)),
            # consolidated equity feeds do not report the aggressor: only the truth knows it
            "aggressor_side": pl.Series([None] * n, dtype=pl.String),
            "source": pl.repeat(self._source("stock_trades"), n, eager=True, dtype=pl.String),
        })
        yield from self._sliced(frame)

    def _stock_trades_truth(self, ref: PartitionRef) -> pl.DataFrame:
        day, p = self.underlying(ref), self._stock_prints(ref)
        seq = np.arange(p.ts.size, dtype=np.int64)
        at = day.index_at(p.ts)
        return pl.DataFrame({
            "sequence": seq, "ts_ns": p.ts, "trade_id": self._trade_ids(ref, seq), "side": np.where(p.buy, "B", "S"),
            "underlying_price": day.mid[at], "efficient_price": day.efficient[at], "quote_sequence": p.quote_index,
        }, schema=TRUTH_SCHEMAS["stock_trades"])

    # --- futures ---------------------------------------------------------------------

    def _futures_identity(self, ref: PartitionRef, fut: FuturesDay, n: int) -> dict[str, pl.Series]:
        return {
            "symbol": pl.repeat(fut.symbol, n, eager=True, dtype=pl.String),
            "instrument_id": pl.repeat(self.settings.futures_instrument_id, n, eager=True, dtype=pl.Int64),
            "underlying": pl.repeat(ref.underlying, n, eager=True, dtype=pl.String),
        }

    def _mbp_frames(self, ref: PartitionRef) -> Iterator[pl.DataFrame]:
        fut = self.futures(ref)
        if fut is None:
            return
        actions = pl.Series(list(_kernels.ACTIONS), dtype=pl.String)
        sides = pl.Series(list(_kernels.SIDES), dtype=pl.String)
        for start in range(0, fut.ts.size, self.chunk_rows):
            sl = slice(start, start + self.chunk_rows)
            n = fut.ts[sl].size
            cols: dict[str, object] = {
                "ts_ns": pl.Series(fut.ts[sl], dtype=pl.Int64),
                "sequence": pl.Series(np.arange(start, start + n, dtype=np.int64)),
                "ts_recv_ns": pl.Series(fut.ts_recv[sl], dtype=pl.Int64),
                **self._futures_identity(ref, fut, n),
                "action": actions.gather(fut.action[sl].astype(np.int64)),
                "side": sides.gather(fut.side[sl].astype(np.int64)),
                "event_price": ticks_to_price(fut.ev_px[sl], fut.tick),
                "event_size": pl.Series(fut.ev_sz[sl], dtype=pl.Int64),
            }
            best = fut.best_bid[sl]
            for name, sizes, counts, sign, first in (("bid", fut.bid_sz, fut.bid_ct, -1, 0), ("ask", fut.ask_sz, fut.ask_ct, 1, 1)):
                for k in range(_kernels.BOOK_LEVELS):
                    cols[f"{name}_px_{k:02d}"] = ticks_to_price(best + first + sign * k, fut.tick)
                    cols[f"{name}_sz_{k:02d}"] = pl.Series(sizes[sl, k], dtype=pl.Int64)
                    cols[f"{name}_ct_{k:02d}"] = pl.Series(counts[sl, k], dtype=pl.Int64)
            cols["source"] = pl.repeat(self._source("futures_mbp10"), n, eager=True, dtype=pl.String)
            yield pl.DataFrame(cols).select(schemas.FUTURES_MBP10.columns)

    def _futures_mbp10_truth(self, ref: PartitionRef) -> pl.DataFrame | None:
        fut, day = self.futures(ref), self.underlying(ref)
        if fut is None:
            return None
        mid = day.mid_at(fut.ts)
        return pl.DataFrame({"sequence": np.arange(fut.ts.size, dtype=np.int64), "ts_ns": fut.ts,
                             "underlying_price": mid, "fair_price": fut.ratio * mid},
                            schema=TRUTH_SCHEMAS["futures_mbp10"])

    def _futures_trade_frames(self, ref: PartitionRef) -> Iterator[pl.DataFrame]:
        fut = self.futures(ref)
        if fut is None:
            return
        p, s = fut.prints, self.settings
        n = p.ts.size
        frame = pl.DataFrame({
            "ts_ns": pl.Series(p.ts, dtype=pl.Int64),
            # CME numbers packets: a print shares the sequence of its book event (the ``T`` row)
            "sequence": pl.Series(p.quote_index, dtype=pl.Int64),
            "ts_recv_ns": pl.Series(fut.trade_recv, dtype=pl.Int64),
            **self._futures_identity(ref, fut, n),
            "price": pl.Series(p.price, dtype=pl.Float64),
            "size": pl.Series(p.size, dtype=pl.Int64),
            "exchange": pl.repeat(s.futures_exchange, n, eager=True, dtype=pl.String),
            "conditions": pl.Series([None] * n, dtype=pl.List(pl.String)),
            "trade_id": self._trade_ids(ref, p.quote_index),
            "canceled": pl.Series(np.zeros(n, dtype=bool)),
            "aggressor_side": pl.Series(np.where(p.buy, "B", "S"), dtype=pl.String),
            "source": pl.repeat(self._source("futures_trades"), n, eager=True, dtype=pl.String),
        })
        yield from self._sliced(frame)

    def _futures_trades_truth(self, ref: PartitionRef) -> pl.DataFrame | None:
        fut, day = self.futures(ref), self.underlying(ref)
        if fut is None:
            return None
        p = fut.prints
        mid = day.mid_at(p.ts)
        return pl.DataFrame({
            "sequence": p.quote_index, "ts_ns": p.ts, "trade_id": self._trade_ids(ref, p.quote_index),
            "side": np.where(p.buy, "B", "S"), "underlying_price": mid, "fair_price": fut.ratio * mid,
            "quote_sequence": p.quote_index,
        }, schema=TRUTH_SCHEMAS["futures_trades"])

    # --- rates -----------------------------------------------------------------------

    def _rates_frames(self, ref: PartitionRef) -> Iterator[pl.DataFrame]:
        yield rates_source.constant_rates(ref, self.rates)
