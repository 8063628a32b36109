"""The seeded synthetic SPY day through the whole asset graph (raw -> enriched -> gold),
scored against its ground truth: known aggressors and known implied volatility.

A day at 2% of the default size (400k option quotes, 10k option prints) keeps this
under a minute; the full day is measured by ``./m17 bench pipeline``.
"""

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from assets.partitions import partition_key
from m17_platform.definitions import defs
from m17_platform.lake import Lake, PartitionRef
from m17_platform.schemas import FLOW_WINDOWS, OPTION_QUOTES, OPTION_TRADE_GREEKS, OPTION_TRADES, OPTION_TRADES_ENRICHED
from m17_platform.settings import DEFAULT

pytestmark = pytest.mark.slow

SCALE = 0.02
REF = PartitionRef(dt.date(2025, 11, 10), "SPY")
SIGN = {"buy": 1, "sell": -1, "unknown": 0, "B": 1, "S": -1}


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", [REF.underlying])
        result = defs.resolve_job_def("main").execute_in_process(
            partition_key=partition_key(REF),
            instance=instance,
            run_config={"resources": {
                "lake": {"config": {"root": str(root / "lake"), "reports_root": str(root / "reports")}},
                "market_data": {"config": {"kind": "synthetic", "synthetic_scale": SCALE}},
            }},
            raise_on_error=False,
        )
    lake = Lake(root / "lake")
    prints = (
        lake.read(OPTION_TRADES_ENRICHED, REF)
        .join(lake.read_truth(OPTION_TRADES, REF).select("trade_id", pl.col("side").alias("truth_side"), "iv", "kind"),
              on="trade_id", how="left")
        .join(lake.read(OPTION_TRADE_GREEKS, REF).select("option_symbol", "ts_ns", "sequence", "delta", "iv_mid", "iv_mid_status",
                                                         pl.col("underlying_price").alias("S")),
              on=["option_symbol", "ts_ns", "sequence"], how="left")
        .filter(~pl.col("canceled"))
        .with_columns(pl.col("side").replace_strict(SIGN).alias("sign"),
                      pl.col("truth_side").replace_strict(SIGN).alias("truth_sign"))
    )
    return result, lake, prints


def test_every_asset_materializes_and_no_error_check_fails(day):
    result, lake, _ = day
    assert result.success
    errors = [(e.asset_key.path[-1], e.check_name) for e in result.get_asset_check_evaluations()
              if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    assert errors == []
    settings = DEFAULT.synthetic.scaled(SCALE)
    assert lake.manifest(OPTION_QUOTES, REF).rows == settings.option_quotes
    assert lake.manifest(OPTION_TRADES, REF).rows == settings.option_trades


def test_aggressor_matches_the_known_side_wherever_the_quote_decides(day):
    _, _, prints = day
    assert prints.get_column("truth_side").null_count() == 0  # every print has its truth
    decided = prints.filter(pl.col("placement").is_in(["AA", "A", "B", "BB"]))
    assert decided.height > 0.8 * prints.height
    assert (decided.get_column("sign") == decided.get_column("truth_sign")).all()
    # midpoint prints carry no quote evidence: the tick test there is little better than a coin
    accuracy = float((prints.get_column("sign") == prints.get_column("truth_sign")).mean())
    assert accuracy >= 0.9


def _per_window(prints: pl.DataFrame, sign: str, window_ns: int) -> pl.DataFrame:
    signed = pl.col(sign) * pl.col("size") * pl.col("multiplier")
    return prints.group_by((pl.col("ts_ns") // window_ns * window_ns).alias("window_start_ns")).agg(
        (pl.col(sign) * pl.col("premium")).sum().alias(f"net_premium_{sign}"),
        (signed * pl.col("delta") * pl.col("S")).sum().alias(f"delta_flow_{sign}"),
    )


def test_signed_flows_are_the_aggressor_signed_sums_and_track_the_known_sides(day):
    _, lake, prints = day
    window = DEFAULT.flow.artifact_window_seconds * 10**9  # M17's 10-min windows
    windows = lake.read(FLOW_WINDOWS, REF).filter((pl.col("grain") == "underlying") & (pl.col("window_ns") == window))
    merged = windows.join(_per_window(prints, "sign", window), on="window_start_ns").join(
        _per_window(prints, "truth_sign", window), on="window_start_ns"
    )
    assert merged.height == windows.height > 30
    # the gold windows are exactly the aggressor-signed sums (premium; delta x size x multiplier x S)
    assert (merged["net_premium"] - merged["net_premium_sign"]).abs().max() <= 1e-6 * merged["premium"].max()
    assert ((merged["delta_flow"] - merged["delta_flow_sign"]).abs() <= 1e-9 * merged["delta_flow"].abs().max()).all()
    # and they track the flows signed by the known aggressors
    assert merged.select(pl.corr("net_premium", "net_premium_truth_sign")).item() > 0.9
    assert merged.select(pl.corr("delta_flow", "delta_flow_truth_sign")).item() > 0.85
    # where the quote decides the side, the signed flow is the true flow
    decided = prints.filter(pl.col("placement").is_in(["AA", "A", "B", "BB"]))
    ours, truth = _per_window(decided, "sign", window), _per_window(decided, "truth_sign", window)
    both = ours.join(truth, on="window_start_ns")
    assert (both["net_premium_sign"] == both["net_premium_truth_sign"]).all()


def test_implied_volatility_recovers_the_surface(day):
    _, _, prints = day
    ok = prints.filter(pl.col("iv_mid").is_not_null())
    # the rest have a status: 0DTE quotes with a zero bid (no mid) or a tick-rounded mid
    # below intrinsic in the last minutes; none fails to converge
    assert ok.height > 0.8 * prints.height
    # the mid is rounded to the tick, so its IV sits near, not on, the surface's
    assert "NOT_CONVERGED" not in set(prints["iv_mid_status"])
    assert float((ok["iv_mid"] - ok["iv"]).abs().median()) < 0.01
