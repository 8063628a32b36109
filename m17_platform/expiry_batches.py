"""The option enrichments of a partition larger than memory, a batch at a time.

A day of option quotes (20 million rows for the synthetic SPY day) does not need to be
in memory at once: every option enrichment only relates rows of the same contract (the
NBBO join, the IV of a quote) or of the same expiration (put-call-parity forwards).
The lake stores option tables sorted by OCC symbol, so a contract's rows, and the rows
of one root and expiration (:data:`EXPIRY_GROUP`), are contiguous:
:meth:`m17_platform.lake.Lake.iter_batches` yields batches of whole contracts (or, with
that group and only the columns forwards need, of whole expiries), and the functions
here run the whole-partition functions of :mod:`m17_platform.enrichment` on each
batch. A partition that fits in one batch gives exactly the whole-partition result.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import polars as pl

from m17_platform import enrichment
from m17_platform.settings import DEFAULT, Settings

EXPIRY_GROUP: pl.Expr = pl.concat_str([pl.col("root"), pl.col("expiration").cast(pl.String)], separator="|")
"""Root and expiration (``SPXW|2025-11-10``): contiguous runs in option tables' stored order."""

FORWARD_QUOTE_COLUMNS = ["root", "expiration", "strike", "right", "ts_ns", "bid", "ask"]
"""The option quote columns :func:`enrichment.parity_forwards` reads."""


def parity_forwards(
    quote_batches: Iterable[pl.DataFrame], contracts: pl.DataFrame, rates: pl.DataFrame, settings: Settings = DEFAULT
) -> pl.DataFrame:
    """Put-call-parity forwards of a partition from its option quotes given in expiry
    batches (:func:`m17_platform.enrichment.parity_forwards` per batch, concatenated).

    Returns
    -------
    polars.DataFrame
        expiration (date), ts_ns (int64 ns UTC), forward (float64 dollars), sorted by ts_ns.
    """
    rate, _ = enrichment.rate_inputs(rates, settings)
    frames = [enrichment.parity_forwards(b, contracts, rate, settings) for b in quote_batches]
    if not frames:
        from m17_platform.schemas import OPTION_QUOTES, empty_frame

        return enrichment.parity_forwards(empty_frame(OPTION_QUOTES), contracts, rate, settings)
    # a total order: the same rows whatever the batches (two roots can share an expiration)
    return pl.concat(frames).sort(["ts_ns", "expiration", "forward"])


def enrich_option_trades(
    trades: pl.DataFrame,
    quote_batches: Iterable[pl.DataFrame],
    stock_quotes: pl.DataFrame,
    stock_trades: pl.DataFrame,
    contracts: pl.DataFrame,
    settings: Settings = DEFAULT,
) -> Iterator[pl.DataFrame]:
    """``option_trades_enriched`` of a partition, one batch of quotes at a time (batches
    of whole contracts, or of whole expiry groups).

    Each batch's prints are joined to that batch's quotes
    (:func:`m17_platform.enrichment.enrich_option_trades`); prints of contracts with no
    quote at all come last, joined to no quote (flagged ``no_quote``), never dropped.

    Yields
    ------
    polars.DataFrame
        ``option_trades_enriched`` rows; over all batches, every print exactly once (at
        least one frame, empty for a partition without prints).
    """
    from m17_platform.schemas import OPTION_QUOTES, empty_frame

    trades = trades.with_columns(pl.col("option_symbol").alias("_group"))
    seen: set[str] = set()
    yielded = False
    for quotes in quote_batches:
        groups = quotes.get_column("option_symbol").unique().to_list()
        seen.update(groups)
        batch = trades.filter(pl.col("_group").is_in(groups)).drop("_group")
        if batch.height:
            yielded = True
            yield enrichment.enrich_option_trades(batch, quotes, stock_quotes, stock_trades, contracts, settings)
    rest = trades.filter(~pl.col("_group").is_in(list(seen))).drop("_group")
    if rest.height or not yielded:
        yield enrichment.enrich_option_trades(
            rest, empty_frame(OPTION_QUOTES), stock_quotes, stock_trades, contracts, settings
        )


def option_quote_greeks(
    quote_batches: Iterable[pl.DataFrame],
    forwards: pl.DataFrame,
    contracts: pl.DataFrame,
    stock_quotes: pl.DataFrame,
    vendor: pl.DataFrame,
    rates: pl.DataFrame,
    settings: Settings = DEFAULT,
) -> Iterator[pl.DataFrame]:
    """``option_quote_greeks`` of a partition, one batch of whole contracts at a time
    (:func:`m17_platform.enrichment.option_quote_greeks` per batch, with the vendor rows
    of that batch's contracts and the partition's parity ``forwards``, from
    :func:`parity_forwards`).

    Yields
    ------
    polars.DataFrame
        ``option_quote_greeks`` rows; over all batches, every quote exactly once.
    """
    for quotes in quote_batches:
        symbols = quotes.get_column("option_symbol").unique()
        batch_vendor = vendor.filter(pl.col("option_symbol").is_in(symbols.implode()))
        yield enrichment.option_quote_greeks(
            quotes, contracts, stock_quotes, batch_vendor, rates, settings, forwards=forwards
        )
