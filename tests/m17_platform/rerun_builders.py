"""Every enriched and gold builder on a partition's raw frames, as the assets call them:
what a rerun of the partition writes, for the rerun tests (test_rerun_determinism.py).

Also a script, so a test can run the builders in a process with other thread counts::

    python tests/m17_platform/rerun_builders.py RAW_DIR OUT_DIR [BATCH_ROWS]

reads ``RAW_DIR/<partition>/<table>.parquet`` and writes every output table as
``OUT_DIR/<partition>/<table>.parquet`` (in the lake's order) plus ``extras.json`` (the
window artifact and every builder's manifest counts).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from m17_platform import enrichment, expiry_batches, schemas
from m17_platform.expiry_batches import EXPIRY_GROUP, FORWARD_QUOTE_COLUMNS
from m17_platform.flow import gold
from m17_platform.nbbo import join_quality

PARTITIONS = {
    # the seeded synthetic SPY day, small: options, stock, ES book and prints
    "2025-11-10|SPY": ("synthetic", 0.005),
    # Cboe VIX option prints: Black-76 on parity forwards
    "2016-06-01|VIX": ("samples", None),
    # Cboe VIX quotes with open interest: the open-interest gamma panel
    "2021-04-26|VIX": ("samples", None),
}


def parse(key: str) -> tuple[dt.date, str]:
    day, underlying = key.split("|")
    return dt.date.fromisoformat(day), underlying


def raw_frames(key: str) -> dict[str, pl.DataFrame]:
    """The raw tables of partition ``key`` (one of :data:`PARTITIONS`) from its source."""
    from m17_platform.lake import PartitionRef
    from m17_platform.settings import DEFAULT
    from m17_platform.sources.samples import SamplesSource
    from m17_platform.sources.synthetic.source import SyntheticSource

    kind, scale = PARTITIONS[key]
    ref = PartitionRef(*parse(key))
    source = SyntheticSource(DEFAULT.synthetic.scaled(scale)) if kind == "synthetic" else SamplesSource()
    out = {}
    for name, spec in schemas.RAW_TABLES.items():
        frames = [c.frame for c in source.chunks(name, ref)] if name in source.tables() else []
        frame = pl.concat(frames) if frames else pl.from_arrow(spec.schema.empty_table())
        out[name] = lake_order(name, pl.from_arrow(schemas.conform(frame, spec)))
    return out


def lake_order(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` sorted as the lake writes table ``name`` (stable, nulls last), one chunk."""
    keys = list(schemas.table(name).sort_key)
    return frame.sort(keys, maintain_order=True, nulls_last=True).rechunk()


def batches(frame: pl.DataFrame, max_rows: int, group: pl.Expr) -> Iterator[pl.DataFrame]:
    """``frame`` (stored order) in batches of about ``max_rows`` rows that never split a
    run of equal ``group`` values, as :meth:`m17_platform.lake.Lake.iter_batches` cuts."""
    if frame.height <= max_rows:
        yield frame
        return
    runs = frame.select(group.rle_id().alias("_run")).get_column("_run").to_numpy()
    start = 0
    while start < frame.height:
        end = min(start + max_rows, frame.height)
        while end < frame.height and runs[end] == runs[end - 1]:
            end += 1
        yield frame.slice(start, end - start)
        start = end


def build(key: str, raw: dict[str, pl.DataFrame], batch_rows: int = 1_000_000
          ) -> tuple[dict[str, pl.DataFrame], dict]:
    """Every enriched and gold table of partition ``key`` from its raw tables, each in the
    lake's order, and the extras a rerun writes beside them (the window artifact, the
    manifest counts of every builder, the enriched join quality)."""
    trade_date, underlying = parse(key)
    quotes, contracts, rates = raw["option_quotes"], raw["option_contracts"], raw["rates"]
    stock_quotes, vendor = raw["stock_quotes"], raw["option_vendor_greeks"]
    by_contract = pl.col("option_symbol")
    out: dict[str, pl.DataFrame] = {}
    out["option_trades_enriched"] = pl.concat(list(expiry_batches.enrich_option_trades(
        raw["option_trades"], batches(quotes, batch_rows, by_contract), stock_quotes, raw["stock_trades"], contracts)))
    out["stock_trades_enriched"] = enrichment.enrich_stock_trades(raw["stock_trades"], stock_quotes)
    out["futures_trades_enriched"] = enrichment.enrich_futures_trades(raw["futures_trades"], raw["futures_mbp10"])
    forwards = expiry_batches.parity_forwards(
        batches(quotes.select(FORWARD_QUOTE_COLUMNS), batch_rows, EXPIRY_GROUP), contracts, rates)
    out["option_trades_enriched"] = lake_order("option_trades_enriched", out["option_trades_enriched"])
    out["option_trade_greeks"] = enrichment.option_trade_greeks(out["option_trades_enriched"], forwards, contracts, rates)
    out["option_quote_greeks"] = pl.concat(list(expiry_batches.option_quote_greeks(
        batches(quotes, batch_rows, by_contract), forwards, contracts, stock_quotes, vendor, rates)))
    out = {name: lake_order(name, frame) for name, frame in out.items()}
    extras: dict = {"join_quality": {name: join_quality(out[name]) for name in
                                     ("option_trades_enriched", "stock_trades_enriched", "futures_trades_enriched")
                                     if out[name].height}}

    enriched, greeks = out["option_trades_enriched"], out["option_trade_greeks"]
    snapshots = gold.snapshot_quote_greeks(
        batches(out["option_quote_greeks"].select(gold.SNAPSHOT_QUOTE_GREEKS_COLUMNS), batch_rows, by_contract), vendor)
    built = {
        "flow_windows": gold.build_flow_windows(enriched, greeks),
        "flow_packets": gold.build_flow_packets(enriched, greeks),
        "flow_alerts": gold.build_flow_alerts(enriched, greeks, trade_date),
        "gamma_exposure": gold.build_gamma_exposure(enriched, greeks, vendor, snapshots, contracts, trade_date, underlying),
        "off_exchange_prints": gold.build_off_exchange_prints(out["stock_trades_enriched"]),
        "bars": gold.build_bars(out["stock_trades_enriched"], out["futures_trades_enriched"], enriched),
    }
    prints = lake_order("off_exchange_prints", built["off_exchange_prints"][0])
    built["off_exchange_events"] = gold.build_off_exchange_events(prints, stock_quotes)
    for name, result in built.items():
        out[name] = lake_order(name, result[0])
        extras[f"stats/{name}"] = result[1]
    extras["windows.txt"] = built["flow_windows"][2]
    return out, extras


def write(out: dict[str, pl.DataFrame], extras: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in out.items():
        frame.write_parquet(folder / f"{name}.parquet")
    (folder / "extras.json").write_text(json.dumps(extras, sort_keys=True, default=str, indent=1))


def main(argv: list[str]) -> int:
    raw_dir, out_dir = Path(argv[0]), Path(argv[1])
    batch_rows = int(argv[2]) if len(argv) > 2 else 1_000_000
    for key in PARTITIONS:
        part = raw_dir / key.replace("|", "_")
        raw = {p.stem: pl.read_parquet(p) for p in sorted(part.glob("*.parquet"))}
        write(*build(key, raw, batch_rows), out_dir / key.replace("|", "_"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
