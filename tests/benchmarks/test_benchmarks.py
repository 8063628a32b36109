"""Smoke tests of the benchmarks: on a tiny generated day the engines AGREE (no timing asserts)."""

import json

import numpy as np
import polars as pl
import pytest

from benchmarks import data, greeks as greeks_bench, join as join_bench


@pytest.fixture(scope="module")
def tiny_day():
    return data.generate_day("small", n_quotes=40_000, n_trades=4_000, n_contracts=60)


def test_generator_is_deterministic_sorted_and_realistic(tiny_day):
    trades, quotes = tiny_day
    again_t, again_q = data.generate_day("small", n_quotes=40_000, n_trades=4_000, n_contracts=60)
    assert trades.equals(again_t) and quotes.equals(again_q)
    assert quotes.height == 40_000 and trades.height == 4_000
    for f in (trades, quotes):
        assert f.equals(f.sort("contract", "ts_ns", "sequence"))
        assert f.get_column("contract").equals(f.get_column("contract_id").cast(pl.String), check_names=False)
        assert f.schema["ts_ns"] == pl.Int64 and f.schema["sequence"] == pl.Int64
    assert quotes.schema["bid"] == pl.Float64 and quotes.schema["bid_size"] == pl.Int32
    # quote timestamps strictly increase within a contract: the prevailing quote is unambiguous
    assert quotes.select((pl.col("ts_ns").diff().over("contract") > 0).all()).item()
    spread = quotes.get_column("ask") - quotes.get_column("bid")
    assert 0.01 <= spread.median() <= 0.10
    assert (spread < 0).any() and (spread == 0).any()  # a few crossed and locked quotes
    # the Enum's physical order is the string order
    cats = trades.get_column("contract_id").dtype.categories.to_list()
    assert cats == sorted(cats)


def test_join_engines_agree_row_for_row(tiny_day):
    trades, quotes = tiny_day
    for inst in join_bench.LAYOUTS.values():
        t = trades.select(inst, "ts_ns", "sequence", "price", "size")
        q = quotes.select(inst, "ts_ns", "sequence", "bid", "ask", "bid_size", "ask_size")
        ours = join_bench._ours(t, q, inst)
        assert ours.get_column("quote_ts_ns").null_count() < ours.height
        assert set(ours.get_column("side").unique()) == {"buy", "sell", "unknown"}
        placements = set(ours.get_column("placement").drop_nulls().unique())
        assert {"AA", "A", "MID", "B", "BB"} <= placements  # trades at, inside and outside the quote
        import duckdb

        con = duckdb.connect()
        con.execute("SET asof_loop_join_threshold = 0")
        for peer in (join_bench._polars(t, q, inst), join_bench._duckdb_runner(con)(t, q, inst)):
            check = join_bench._compare(ours, peer)
            assert check == {"rows": trades.height, "mismatched_rows": 0, "max_abs_diff_bid_ask": 0.0}
        con.close()


def test_join_run_reports_agreement_and_ratio_line(capsys, monkeypatch):
    res = join_bench.run("small", repeats=1, n_quotes=20_000, n_trades=2_000)
    assert res["all_agree"] and set(res["ratio"]) == {"polars", "duckdb"}
    json.dumps(res)
    monkeypatch.setattr(join_bench, "run", lambda size, repeats: res)
    assert join_bench.main(["--size", "small"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("ratio: polars=") and " duckdb=" in lines[-1]
    assert join_bench.main(["--size", "small", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["benchmark"] == "join"


def test_iv_agrees_with_py_vollib_vectorized_on_well_conditioned_rows():
    x = greeks_bench._inputs(5_000)
    flag = np.where(x["is_call"], "c", "p")
    ours = greeks_bench._ours(x)
    peer = greeks_bench._peer(x, flag)
    good = greeks_bench.well_conditioned(x)
    assert good.sum() > 1_000
    assert (ours["status"][good] == 0).all()
    assert np.abs(ours["iv"][good] - x["sigma"][good]).max() <= 1e-10
    assert np.abs(ours["iv"][good] - peer["iv"][good]).max() <= 1e-10
    # py_vollib_vectorized's greeks use an approximations (vega differs by up to ~0.6 %): a sanity band, not identity
    for g in ("delta", "gamma", "vega"):
        assert np.allclose(ours[g][good], peer[g][good], rtol=1e-2, atol=1e-4), g


def test_greeks_run_reports_ratio_line(capsys, monkeypatch):
    res = greeks_bench.run("small", repeats=1, n=3_000)
    assert res["checks"]["iv_within_tolerance"] and res["checks"]["silent_wrong_ours"] == 0
    json.dumps(res)
    monkeypatch.setattr(greeks_bench, "run", lambda size, repeats: res)
    assert greeks_bench.main([]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("ratio: py_vollib_vectorized=")


@pytest.mark.slow
def test_pipeline_benchmark_runs_every_layer_of_a_tiny_synthetic_day():
    from benchmarks import pipeline

    res = pipeline.run("tiny")
    layers = {e["layer"]: e for e in res["layers"]}
    assert list(layers) == ["raw", "enriched", "gold", "physics", "report"]
    assert all(e["success"] for e in layers.values())
    assert all(layers[name]["checks"] > 0 and layers[name]["checks_passed"] == layers[name]["checks"]
               for name in ("raw", "enriched", "gold", "physics"))
    assert layers["raw"]["rows"]["option_quotes"] == 40_000
    assert layers["gold"]["rows"]["flow_windows"] > 0
    assert "level_signals" not in layers["gold"]["rows"]
    assert set(layers["physics"]["rows"]) == {"levels", "level_touches", "level_physics", "outcome_labels",
                                              "level_signals"}
    assert layers["physics"]["rows"]["level_signals"] > 0
    assert res["ratio_to_raw"]["raw"] == 1.0 and "physics" in res["ratio_to_raw"]
