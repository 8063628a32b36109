"""The ``m17`` command line (a composition root, like definitions.py).

    m17 demo                 materialize every asset and check for each bundled sample partition
    m17 test [pytest args]   run the test suite
    m17 dev                  Dagster UI + daemon on 127.0.0.1
    m17 underlyings list|add NAME...
    m17 lake                 partitions and row counts in the lake
    m17 docs                 regenerate docs/data_dictionary.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from m17_platform.settings import PROJECT_ROOT

DAGSTER_HOME = PROJECT_ROOT / ".m17" / "dagster_home"
DAGSTER_YAML = """\
# written by m17: a local instance for `m17 demo` and `m17 dev`
telemetry:
  enabled: false
"""


def _dagster_home() -> Path:
    """The Dagster instance folder: $DAGSTER_HOME if set, else .m17/dagster_home in the project."""
    home = Path(os.environ.get("DAGSTER_HOME") or DAGSTER_HOME)
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _instance():
    from dagster import DagsterInstance

    _dagster_home()
    return DagsterInstance.get()


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the main job for every bundled sample partition and print a summary table."""
    from assets.jobs import MAIN_JOB_NAME
    from assets.partitions import UNDERLYINGS, partition_key
    from assets.reports import report_path
    from m17_platform.definitions import defs
    from m17_platform.lake import Lake
    from m17_platform.schemas import RAW_TABLES
    from m17_platform.settings import DEFAULT
    from m17_platform.sources.samples import SAMPLE_PARTITIONS

    started = time.perf_counter()
    instance = _instance()
    wanted = sorted({p.underlying for p in SAMPLE_PARTITIONS})
    have = set(instance.get_dynamic_partitions(UNDERLYINGS.name))
    if missing := [u for u in wanted if u not in have]:
        instance.add_dynamic_partitions(UNDERLYINGS.name, missing)
    job = defs.resolve_job_def(MAIN_JOB_NAME)
    lake_root = Path(args.lake_root or DEFAULT.lake.root)
    reports_root = Path(args.reports_root or DEFAULT.lake.reports_root)
    run_config = {
        "resources": {
            "lake": {"config": {"root": str(lake_root), "reports_root": str(reports_root)}},
            "duckdb": {"config": {"lake_root": str(lake_root)}},
        },
        # the run's events are in the Dagster instance (./m17 dev); keep the terminal to the summary
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    lake = Lake(lake_root)
    rows_out = []
    failures = 0
    for part in SAMPLE_PARTITIONS:
        key = partition_key(part.ref)
        print(f"m17 demo: materializing {key} ...", flush=True)
        result = job.execute_in_process(
            partition_key=key, instance=instance, run_config=run_config, raise_on_error=False
        )
        evaluations = result.get_asset_check_evaluations()
        passed = sum(1 for e in evaluations if e.passed)
        failed = [f"{e.asset_key.path[-1]}.{e.check_name}" for e in evaluations if not e.passed]
        errors = [e for e in evaluations if not e.passed and e.severity.value == "ERROR"]
        if not result.success or errors:
            failures += 1
        counts = {}
        for name, spec in RAW_TABLES.items():
            manifest = lake.manifest(spec, part.ref)
            if manifest is not None and manifest.rows:
                counts[name] = manifest.rows
        rows_out.append((str(part.ref), result.success, counts, passed, failed, report_path(str(reports_root), part.ref)))
    elapsed = time.perf_counter() - started

    print()
    print(f"{'partition':<16} {'run':<4} {'checks':>8}  rows per table")
    for ref, ok, counts, passed, failed, _ in rows_out:
        table = ", ".join(f"{k}={v:,}" for k, v in counts.items()) or "(no rows)"
        print(f"{ref:<16} {'ok' if ok else 'FAIL':<4} {passed:>3}/{passed + len(failed):<4}  {table}")
        if failed:
            print(f"{'':<16} {'':<4} {'':>8}  failed checks: {', '.join(failed)}")
    print()
    print("reports:")
    for ref, _, _, _, _, path in rows_out:
        print(f"  {ref:<16} {path}")
    print()
    print(f"lake: {lake_root}   dagster home: {os.environ['DAGSTER_HOME']}")
    print(f"wall time {elapsed:.1f} s, peak RSS {_peak_rss_mib():.0f} MiB")
    print("inspect the runs in the UI with: ./m17 dev")
    return 1 if failures else 0


def cmd_test(args: argparse.Namespace, extra: list[str]) -> int:
    """Run pytest on the suite (arguments pass through)."""
    env = dict(os.environ)
    env.pop("DAGSTER_HOME", None)
    return subprocess.call([sys.executable, "-m", "pytest", *extra], cwd=PROJECT_ROOT, env=env)


def cmd_dev(args: argparse.Namespace) -> int:
    """Start the Dagster UI and daemon on 127.0.0.1 (sensors and schedules run)."""
    _dagster_home()
    exe = Path(sys.executable).parent / "dagster"
    cmd = [str(exe), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(args.port)]
    print("m17 dev:", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=PROJECT_ROOT)


def cmd_underlyings(args: argparse.Namespace) -> int:
    """List or add underlying partitions."""
    from assets.partitions import UNDERLYINGS

    instance = _instance()
    if args.action == "add":
        names = [n.upper() for n in args.names]
        instance.add_dynamic_partitions(UNDERLYINGS.name, names)
    for name in sorted(instance.get_dynamic_partitions(UNDERLYINGS.name)):
        print(name)
    return 0


def cmd_lake(args: argparse.Namespace) -> int:
    """Print every partition in the lake with its row count and source."""
    from m17_platform.lake import Lake
    from m17_platform.schemas import ALL_TABLES
    from m17_platform.settings import DEFAULT

    lake = Lake(args.root or DEFAULT.lake.root)
    for spec in ALL_TABLES.values():
        for ref in lake.partitions(spec):
            m = lake.manifest(spec, ref)
            print(f"{spec.layer:<8} {spec.name:<22} {str(ref):<16} {m.rows:>9,}  {m.source}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Regenerate docs/data_dictionary.md from the schemas."""
    from m17_platform.schemas import data_dictionary_markdown

    path = PROJECT_ROOT / "docs" / "data_dictionary.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data_dictionary_markdown())
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="m17", description="m17_platform: options market-microstructure data platform")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="materialize the asset graph for the bundled sample partitions")
    demo.add_argument("--lake-root", default=None, help="lake root (default data/lake)")
    demo.add_argument("--reports-root", default=None, help="reports folder (default data/reports)")
    sub.add_parser("test", help="run the test suite (arguments pass through to pytest)")
    dev = sub.add_parser("dev", help="Dagster UI and daemon on 127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    und = sub.add_parser("underlyings", help="list or add underlying partitions")
    und.add_argument("action", choices=["list", "add"])
    und.add_argument("names", nargs="*")
    lake = sub.add_parser("lake", help="partitions and row counts in the lake")
    lake.add_argument("--root", default=None)
    sub.add_parser("docs", help="regenerate docs/data_dictionary.md from the schemas")

    if argv and argv[0] == "test":
        return cmd_test(argparse.Namespace(command="test"), argv[1:])
    args = parser.parse_args(argv)
    handlers = {"demo": cmd_demo, "dev": cmd_dev, "underlyings": cmd_underlyings, "lake": cmd_lake, "docs": cmd_docs}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
