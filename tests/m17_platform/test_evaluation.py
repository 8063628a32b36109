"""`m17 eval`: every number against outside truth (LOBSTER, CME, Cboe, TD Ameritrade)."""

import json
from pathlib import Path

import pytest

from m17_platform import evaluation
from m17_platform.cli import main

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
LOBSTER = SAMPLES / "lobster_amzn_2012-06-21_level1" / "AMZN_2012-06-21_34200000_57600000_message_1.csv.gz"
ESH4 = SAMPLES / "databento_glbx_es_real" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
CBOE = SAMPLES / "cboe_datashop_samples" / "UnderlyingOptionsIntervals_1800sec_calcs_oi_2021-04-26.csv.gz"
TDA = SAMPLES / "tda_spy_option_chain_2022-05-20" / "SPY_chain_tdameritrade_2022-05-20.json.gz"

# Lee-Ready on Nasdaq data: 81% (Ellis, Michaely and O'Hara 2000, the published baseline)
LEE_READY_BASELINE = 0.81


def _rule(result, rule):
    return result.table.filter(result.table["rule"] == rule).row(0, named=True)


def test_aggressor_rules_beat_the_published_baseline():
    amzn, es = evaluation.eval_aggressor([LOBSTER, ESH4])
    lr = _rule(amzn, "lee_ready")
    assert lr["accuracy"] > LEE_READY_BASELINE
    # the LOBSTER provenance measured quote rule 96.5%, Lee-Ready 97.2% on the same sample
    assert lr["accuracy"] == pytest.approx(0.972, abs=0.005)
    assert _rule(amzn, "quote")["accuracy"] == pytest.approx(0.965, abs=0.005)
    assert lr["n_at_quote"] == 8_974 and lr["accuracy_at_quote"] == 1.0
    assert _rule(es, "lee_ready")["accuracy"] > LEE_READY_BASELINE
    assert _rule(es, "lee_ready")["n"] == 2_972  # the auction print has no aggressor and is excluded


def test_greeks_against_cboe_and_tda():
    a, vix = evaluation.eval_greeks(CBOE)
    delta = vix.table.filter(vix.table["quantity"] == "delta").row(0, named=True)
    # the bound: on Cboe's 2021-04-26 VIX rows with bid > 0, median |delta - Cboe delta| <= 0.001
    assert delta["median_abs_diff"] <= 0.001 and delta["n"] > 10_000
    assert "black76" in vix.notes and "put-call parity" in vix.notes
    # A is American with dividends; Cboe's model is not ours (European BSM): looser, measured 0.014
    assert a.table.filter(a.table["quantity"] == "delta")["median_abs_diff"][0] < 0.02
    (spy,) = evaluation.eval_greeks(TDA)
    spy_delta = spy.table.filter(spy.table["quantity"] == "delta").row(0, named=True)
    assert spy_delta["median_abs_diff"] < 0.02 and spy_delta["n"] == 1_010
    assert "0.00100 from the chain's interestRate" in spy.notes


def test_eval_cli_text_and_json(capsys):
    assert main(["eval", "aggressor", str(LOBSTER)]) == 0
    out = capsys.readouterr().out
    assert "lee_ready" in out and out.strip().splitlines()[-1].startswith("summary: ")
    assert main(["eval", "greeks", str(TDA), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["dataset"].endswith("[SPY]")
    assert {row["quantity"] for row in data[0]["rows"]} == {"iv", "delta", "gamma", "theta", "vega"}


def test_eval_names_bad_paths(tmp_path):
    lonely = tmp_path / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
    lonely.write_text("")
    with pytest.raises(FileNotFoundError, match="orderbook file"):
        evaluation.eval_aggressor([lonely])
    with pytest.raises(ValueError, match="expected a Cboe"):
        evaluation.eval_greeks(tmp_path / "other.csv")
