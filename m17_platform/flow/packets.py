"""Flow packets: prints of one contract clustered in time (seed 004's ``FlowPacket``).

Definition
----------
Prints are taken in (option_symbol, ts_ns, sequence) order. A packet starts at a print of
a contract and takes every later print of the same contract at most
``FlowSettings.packet_window_ms`` after that first print; the first print past it starts
the next packet. Anchoring at the first print (rather than chaining prints that are
each within the window of the previous one) bounds a packet's span, so a busy contract
cannot chain into one packet lasting minutes, and makes the clustering deterministic in
one pass (:func:`packet_index`, numba).

Each packet carries its premium (dollars), size (contracts), exchanges touched, price
range against the NBBO at its first print, aggressor mix (contracts per side and per
placement AA/A/MID/B/BB), NBBO coverage, signed delta and gamma flow, and its prints'
evidence ids (:func:`.prints.evidence_id`). Seed 004's dominant side: the larger of buy
and sell when its share of the packet's contracts reaches
``ClassifierSettings.min_aggressor_ratio`` (unknown-side contracts count against it).
"""

from __future__ import annotations

import numba
import numpy as np
import polars as pl

from m17_platform.flow.prints import run_codes
from m17_platform.flow.windows import print_flows
from m17_platform.ordered import run_starts, run_sums
from m17_platform.schemas import FLOW_PACKETS
from m17_platform.settings import DEFAULT, Settings

PLACEMENT_COLUMNS = {
    "AA": "above_ask_volume",
    "A": "at_ask_volume",
    "MID": "mid_volume",
    "B": "at_bid_volume",
    "BB": "below_bid_volume",
}
"""Placement label -> packet column holding its contracts."""

_FLOAT_SUMS = ("premium", "_px_size", "_conf_size", "delta_flow", "gamma_flow")


@numba.njit(cache=True)
def _packet_index_kernel(instrument: np.ndarray, ts: np.ndarray, window_ns: np.int64) -> np.ndarray:
    n = ts.shape[0]
    out = np.empty(n, dtype=np.int64)
    packet = -1
    start = np.int64(0)
    for i in range(n):
        if i == 0 or instrument[i] != instrument[i - 1] or ts[i] - start > window_ns:
            packet += 1
            start = ts[i]
        out[i] = packet
    return out


def packet_index(instrument: np.ndarray, ts: np.ndarray, window_ns: int) -> np.ndarray:
    """Packet number of each print.

    Parameters
    ----------
    instrument : numpy.ndarray of int64, shape (n,)
        Contract code of each print (equal codes = same contract), rows sorted by
        (contract, ts).
    ts : numpy.ndarray of int64, shape (n,)
        Print times, ns since epoch UTC, non-decreasing within a contract.
    window_ns : int
        A packet takes prints at most this long after its first print (ns, >= 0).

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        0, 1, 2, ... in row order; equal numbers share a packet.

    Raises
    ------
    ValueError
        If the arrays differ in length, ``window_ns`` is negative, or ``ts`` goes
        backwards within a contract.
    """
    instrument = np.ascontiguousarray(instrument, dtype=np.int64)
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    if instrument.shape != ts.shape:
        raise ValueError(f"instrument and ts differ in length: {instrument.shape} vs {ts.shape}")
    if window_ns < 0:
        raise ValueError(f"packet window must be >= 0 ns, got {window_ns}")
    if ts.size > 1:
        back = (np.diff(ts) < 0) & (np.diff(instrument) == 0)
        if back.any():
            row = int(np.argmax(back)) + 1
            raise ValueError(f"prints are not sorted by (contract, ts): ts goes backwards at row {row}")
    return _packet_index_kernel(instrument, ts, np.int64(window_ns))


def iso_flag(settings: Settings = DEFAULT) -> pl.Expr:
    """True where a print's conditions include an ISO code (``ClassifierSettings.iso_conditions``)."""
    codes = list(settings.classifiers.iso_conditions)
    return pl.col("conditions").list.eval(pl.element().is_in(codes)).list.any().fill_null(False).alias("iso")


def with_packet_ids(prints: pl.DataFrame, settings: Settings = DEFAULT) -> pl.DataFrame:
    """``prints`` (sorted by option_symbol, ts_ns, sequence) with ``packet`` (int64), the
    packet number of each print."""
    if prints.height == 0:
        return prints.with_columns(pl.lit(None, dtype=pl.Int64).alias("packet"))
    code = run_codes(prints, ["option_symbol"])
    window_ns = int(round(settings.flow.packet_window_ms * 1_000_000))
    idx = packet_index(code, prints.get_column("ts_ns").to_numpy(), window_ns)
    return prints.with_columns(pl.Series("packet", idx, dtype=pl.Int64))


def packet_table(prints: pl.DataFrame, settings: Settings = DEFAULT) -> pl.DataFrame:
    """Every packet of a partition, with the columns of ``flow_packets`` except
    ``presets``, plus what the classifiers need: ``packet`` (int64 number),
    ``underlying_price`` (dollars, S at the first print with one), ``sign`` (+1/-1/0 of
    ``side``), ``multi_leg_condition`` (bool).

    Parameters
    ----------
    prints : polars.DataFrame
        :func:`.prints.option_flow_prints` output.
    settings : Settings
        ``flow.packet_window_ms``, ``classifiers.min_aggressor_ratio``,
        ``classifiers.iso_conditions`` / ``multi_leg_conditions``, ``flow.gamma_move``.

    Returns
    -------
    polars.DataFrame
        One row per packet, in (option_symbol, ts_ns) order.
    """
    flows = print_flows(with_packet_ids(prints, settings), settings)
    legs = list(settings.classifiers.multi_leg_conditions)
    flows = flows.with_columns(
        iso_flag(settings),
        pl.col("conditions").list.eval(pl.element().is_in(legs)).list.any().fill_null(False).alias("_leg"),
        (pl.col("price") * pl.col("size")).alias("_px_size"),
        (pl.col("side_confidence") * pl.col("size")).alias("_conf_size"),
        *[pl.when(pl.col("placement") == p).then(pl.col("size")).otherwise(0).alias(c) for p, c in PLACEMENT_COLUMNS.items()],
    )
    first = pl.col("ts_ns").first()
    agg = flows.group_by("packet", maintain_order=True).agg(
        first.alias("ts_ns"),
        pl.col("ts_ns").last().alias("end_ts_ns"),
        *[pl.col(c).first() for c in ("option_symbol", "underlying", "root", "expiration", "strike", "right", "multiplier",
                                       "bid", "ask")],
        pl.len().cast(pl.Int64).alias("prints"),
        pl.col("size").sum(),
        pl.col("price").min().alias("price_min"),
        pl.col("price").max().alias("price_max"),
        pl.col("exchange").drop_nulls().unique().sort().alias("exchanges"),
        *[pl.col(c).sum() for c in ("buy_volume", "sell_volume", "unknown_volume", *PLACEMENT_COLUMNS.values())],
        pl.col("nbbo_ok").cast(pl.Float64).mean().alias("nbbo_coverage"),
        pl.col("nbbo_fresh").cast(pl.Float64).mean().alias("nbbo_fresh_share"),
        pl.col("iso").any(),
        pl.col("_leg").any().alias("multi_leg_condition"),
        pl.col("underlying_price").drop_nulls().first().alias("underlying_price"),
        pl.col("evidence_id").alias("evidence_trade_ids"),
    )
    # float sums in the prints' order, the same bits on every run (m17_platform.ordered); a
    # packet's prints are one run of rows, and the groups above come in the same order
    sums = run_sums(flows, run_starts(flows, ["packet"]), _FLOAT_SUMS)
    agg = pl.concat([agg, sums], how="horizontal")
    ratio = settings.classifiers.min_aggressor_ratio
    size = pl.col("size").cast(pl.Float64)
    buy_share = pl.col("buy_volume") / size
    sell_share = pl.col("sell_volume") / size
    placement_vols = [pl.col(c) for c in PLACEMENT_COLUMNS.values()]
    agg = agg.with_columns(
        pl.format("{}@{}", pl.col("option_symbol"), pl.col("ts_ns")).alias("packet_id"),
        (pl.col("_px_size") / size).alias("vwap"),
        (pl.col("_conf_size") / size).alias("side_confidence"),
        (pl.col("price_max") - pl.col("ask")).alias("price_max_vs_ask"),
        (pl.col("price_min") - pl.col("bid")).alias("price_min_vs_bid"),
        pl.col("exchanges").list.len().cast(pl.Int64).alias("exchange_count"),
        pl.max_horizontal(buy_share, sell_share).alias("side_share"),
        pl.when(buy_share >= ratio).then(pl.lit("buy"))
        .when(sell_share >= ratio).then(pl.lit("sell"))
        .when(pl.col("unknown_volume") == pl.col("size")).then(pl.lit("unknown"))
        .otherwise(pl.lit("mixed")).alias("side"),
        pl.when(pl.max_horizontal(placement_vols) > 0)
        .then(pl.concat_list(placement_vols).list.arg_max().replace_strict(
            dict(enumerate(PLACEMENT_COLUMNS)), return_dtype=pl.String))
        .alias("placement"),
    ).with_columns(
        pl.col("side").replace_strict({"buy": 1, "sell": -1}, default=0, return_dtype=pl.Int8).alias("sign"),
    )
    return agg.drop("_px_size", "_conf_size")


def flow_packets(table: pl.DataFrame, presets: pl.Series) -> pl.DataFrame:
    """The ``flow_packets`` rows: :func:`packet_table` output with the presets each
    packet passes (:func:`.classifiers.signal_presets`), in the schema's columns.

    Parameters
    ----------
    table : polars.DataFrame
        :func:`packet_table` output.
    presets : polars.Series of list[str]
        One entry per packet, same order.

    Raises
    ------
    ValueError
        If ``presets`` does not have one entry per packet.
    """
    if presets.len() != table.height:
        raise ValueError(f"{presets.len()} preset lists for {table.height} packets")
    return table.with_columns(presets.alias("presets")).select(FLOW_PACKETS.columns)
