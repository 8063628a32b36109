"""Benchmark: the synthetic SPY day through the asset graph, layer by layer.

Each layer (raw ingest, enriched, gold flow, level physics, daily report) runs as its
own in-process Dagster execution of that asset group, with its checks, in a fresh Python
process, so each layer's wall time and peak RSS are its own: raw streams the day from
:class:`m17_platform.sources.synthetic.SyntheticSource` into the lake; enriched joins
every option, stock and ES print to its quote and computes IV and greeks of every print
and quote; gold builds flow windows, packets, alerts, dealer gamma, off-exchange events
and bars; physics builds the five level tables (levels, touches, barrier / tape / fuel
physics, outcome labels, signals: the ``level_physics_chain`` asset) with the
``level_signals`` checks, among them ``no_lookahead``; report writes the daily HTML
report from the check outcomes the earlier layers' asset checks recorded beside their
partitions (it re-runs a table's checks only where that record is missing or stale).
Sizes: ``full`` is the default day (20,000,000 option quotes, 500,000 option prints),
``small`` 2 % of it, ``tiny`` 0.2 % (the smoke test); the ES book keeps its 500,000 rows
at every size. The ratios put each layer next to the raw ingest time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.cli import bench_main

SIZES = {"full": 1.0, "small": 0.02, "tiny": 0.002}
REPEATS = 1
DAY = "2025-11-10"
UNDERLYING = "SPY"
LAYERS = ("raw", "enriched", "gold", "physics", "report")
"""Asset groups by key prefix; ``gold`` is the flow analytics, ``physics`` the level tables
(gold too, :data:`m17_platform.levels.schemas.LEVEL_TABLES`), ``report`` the daily report
(which reads the recorded check outcomes)."""


def _in_layer(layer: str, table_layer: str, name: str) -> bool:
    """Whether table ``table_layer``/``name`` belongs to benchmark layer ``layer``."""
    from m17_platform.levels.schemas import LEVEL_TABLES

    if layer == "report":
        return name == "daily_report"
    if layer == "physics":
        return table_layer == "gold" and name in LEVEL_TABLES
    return table_layer == layer and name != "daily_report" and not (layer == "gold" and name in LEVEL_TABLES)


def _layer_keys(defs, layer: str) -> list:
    return [k for k in defs.resolve_all_asset_keys() if _in_layer(layer, k.path[0], k.path[-1])]


def run_layer(layer: str, root: str, scale: float) -> dict:
    """Materialize one asset group for the synthetic partition; wall time and peak RSS."""
    import datetime as dt
    import resource
    import time

    import dagster as dg

    from assets.partitions import partition_key
    from m17_platform.definitions import defs
    from m17_platform.lake import Lake, PartitionRef
    from m17_platform.schemas import ALL_TABLES

    ref = PartitionRef(dt.date.fromisoformat(DAY), UNDERLYING)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", [UNDERLYING])
        started = time.perf_counter()
        result = defs.resolve_job_def("main").execute_in_process(
            partition_key=partition_key(ref),
            instance=instance,
            asset_selection=_layer_keys(defs, layer),
            run_config={"resources": {
                "lake": {"config": {"root": f"{root}/lake", "reports_root": f"{root}/reports"}},
                "market_data": {"config": {"kind": "synthetic", "synthetic_scale": scale}},
            }},
            raise_on_error=False,
        )
        seconds = time.perf_counter() - started
    lake = Lake(f"{root}/lake")
    rows = {name: lake.manifest(spec, ref).rows for name, spec in ALL_TABLES.items()
            if _in_layer(layer, spec.layer, name) and lake.manifest(spec, ref) is not None}

    checks = result.get_asset_check_evaluations()
    return {
        "layer": layer, "success": result.success, "seconds": round(seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rows": rows, "checks_passed": sum(1 for c in checks if c.passed), "checks": len(checks),
    }


def run(size: str, repeats: int = REPEATS) -> dict:
    """Run the layers in order, each in its own process, on a temporary lake."""
    scale = SIZES[size]
    layers = []
    with tempfile.TemporaryDirectory(prefix="m17-bench-pipeline-") as root:
        for layer in LAYERS:
            code = ("import json, sys; from benchmarks.pipeline import run_layer; "
                    f"print(json.dumps(run_layer({layer!r}, {root!r}, {scale!r})))")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 cwd=Path(__file__).resolve().parent.parent)
            if out.returncode != 0:
                raise RuntimeError(f"layer {layer} failed:\n{out.stderr[-3000:]}")
            layers.append(json.loads(out.stdout.strip().splitlines()[-1]))
    raw = layers[0]["seconds"]
    return {
        "size": size, "scale": scale, "day": DAY, "underlying": UNDERLYING, "layers": layers,
        "ratio_to_raw": {entry["layer"]: round(entry["seconds"] / raw, 3) for entry in layers},
    }


def _print(res: dict) -> None:
    print(f"synthetic {res['underlying']} day {res['day']} at scale {res['scale']}")
    print(f"{'layer':<10} {'seconds':>9} {'peak RSS':>10} {'checks':>9}  rows")
    for e in res["layers"]:
        rows = ", ".join(f"{k}={v:,}" for k, v in e["rows"].items() if v)
        state = "" if e["success"] else "  FAILED"
        print(f"{e['layer']:<10} {e['seconds']:>9.1f} {e['peak_rss_mib']:>7.0f} MiB {e['checks_passed']:>4}/{e['checks']:<4}  {rows}{state}")
    print("ratio: " + " ".join(f"{k}/raw={v}" for k, v in res["ratio_to_raw"].items()))


def main(argv: list[str] | None = None) -> int:
    """``m17 bench pipeline [--size small|full] [--json]``."""
    return bench_main("pipeline", __doc__, SIZES, REPEATS, run, _print, argv)


if __name__ == "__main__":
    raise SystemExit(main())
