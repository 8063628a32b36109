"""The ``m17`` command line (a composition root, like definitions.py).

    m17 demo                 materialize every asset and check for each bundled sample partition and a synthetic day
    m17 ingest --source S --date D --underlying U [--set KEY=VALUE] [--allow-empty]   raw partitions from a source
    m17 test [pytest args]   run the test suite
    m17 dev                  Dagster UI + daemon on 127.0.0.1
    m17 underlyings list|add|remove NAME...
    m17 lake [list|verify|recover] [--partition DATE|U]   partitions, rows, status; checksums; crash leftovers
    m17 docs                 regenerate docs/data_dictionary.md and docs/signals.md
    m17 signals build --partition DATE|U --as-of HH:MM:SS [--out FILE.parquet]   level signals as of an instant
    m17 signals export --start D --end D [--underlying U] --out FILE.parquet     level signals of a date range
    m17 validate signals [--partition DATE|U]   rows, nulls, ranges, distributions, look-ahead of level_signals
    m17 eval aggressor PATH... / m17 eval greeks PATH [--json]
    m17 bench NAME [--size small|full] [--json]
    m17 capture --underlying U [--all-contracts] [--duration S] [--set KEY=VALUE]   websocket capture into the landing zone
    m17 replay serve (--in-dir DIR | --partition DATE|U) [--bind 127.0.0.1:9000] [--speed X]
    m17 replay record --out-dir DIR --stocks T.SPY,Q.SPY --options T.*  [--duration S]

A bad file, argument or setting is one line on stderr naming it and what was expected,
exit status 2 (a failed ingest or demo run: 1); ``m17 --debug COMMAND ...`` shows the
traceback and Dagster's step logs instead (:mod:`m17_platform.cli_errors`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from m17_platform import cli_checks as checks
from m17_platform.cli_errors import (
    OneLineParser,
    UsageError,
    report,
    step_failure_cause,
)
from m17_platform.runs import fail_dead_runs, in_process_tags
from m17_platform.settings import DEFAULT, PROJECT_ROOT

DEFAULT_REPLAY_SPEED = DEFAULT.capture.replay_speed

DAGSTER_HOME = PROJECT_ROOT / ".m17" / "dagster_home"
DAGSTER_YAML_MARK = "# written by m17"
DAGSTER_YAML = f"""\
{DAGSTER_YAML_MARK}: a local instance for `m17 demo` and `m17 dev` (rewritten by newer m17 versions;
# remove this first line to keep your own settings)
telemetry:
  enabled: false
# the daemon (`m17 dev`) fails runs stuck STARTING or CANCELING and runs past their
# dagster/max_runtime tag; runs that `m17 ingest` / `m17 demo` execute in-process are
# failed when their process is gone by m17_platform.runs.fail_dead_runs
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  # the default run launcher cannot resume a run: a dead worker's run is failed
  max_resume_run_attempts: 0
  poll_interval_seconds: 60
"""


def _dagster_home() -> Path:
    """The Dagster instance folder: $DAGSTER_HOME if set, else .m17/dagster_home in the project.

    Its ``dagster.yaml`` is :data:`DAGSTER_YAML` (telemetry off, run monitoring on): written
    when missing, and rewritten when m17 wrote it (its first line starts with
    :data:`DAGSTER_YAML_MARK`) with other settings, e.g. by an older version; a file of the
    user's own is left as it is.
    """
    home = Path(os.environ.get("DAGSTER_HOME") or DAGSTER_HOME)
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    try:
        current = cfg.read_text()
    except FileNotFoundError:
        current = None
    if current is None or (current.startswith(DAGSTER_YAML_MARK) and current != DAGSTER_YAML):
        tmp = cfg.with_name(f".dagster.yaml.{os.getpid()}.tmp")
        tmp.write_text(DAGSTER_YAML)
        os.replace(tmp, cfg)
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
    from m17_platform.lake import Lake, PartitionRef
    from m17_platform.schemas import ALL_TABLES
    from m17_platform.settings import DEFAULT
    from m17_platform.sources.samples import SAMPLE_PARTITIONS

    started = time.perf_counter()
    instance = _instance()
    fail_dead_runs(instance)  # runs of killed `m17 demo` / `m17 ingest` processes are marked failed
    wanted = sorted({p.underlying for p in SAMPLE_PARTITIONS} | {"SPY"})
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
        # (step failures log at ERROR: one line each below; --debug shows Dagster's log)
        "loggers": {"console": {"config": {"log_level": "WARNING" if getattr(args, "debug", False) else "CRITICAL"}}},
    }
    lake = Lake(lake_root)
    rows_out = []
    failures = 0
    synthetic = DEFAULT.synthetic
    demo_runs = [(part.ref, {"kind": "samples"}, "bundled samples") for part in SAMPLE_PARTITIONS]
    demo_runs.append((
        PartitionRef(synthetic.demo_day, "SPY"),
        {"kind": "synthetic", "synthetic_scale": synthetic.demo_scale},
        f"synthetic day at {synthetic.demo_scale:g} of full size",
    ))
    for ref, market_data, what in demo_runs:
        key = partition_key(ref)
        print(f"m17 demo: materializing {key} from {what} ...", flush=True)
        config = {**run_config, "resources": {**run_config["resources"], "market_data": {"config": market_data}}}
        result = job.execute_in_process(partition_key=key, instance=instance, run_config=config, raise_on_error=False,
                                        tags=in_process_tags())
        evaluations = result.get_asset_check_evaluations()
        passed = sum(1 for e in evaluations if e.passed)
        failed = [f"{e.asset_key.path[-1]}.{e.check_name}" for e in evaluations if not e.passed]
        errors = [e for e in evaluations if not e.passed and e.severity.value == "ERROR"]
        if not result.success or errors:
            failures += 1
        for event in result.all_events:
            if event.is_step_failure:
                print(f"m17 demo: {key}: step {event.step_key} failed: {step_failure_cause(event.event_specific_data.error)}",
                      file=sys.stderr, flush=True)
        counts = {}
        for name, spec in ALL_TABLES.items():
            manifest = lake.manifest(spec, ref)
            if manifest is not None and manifest.rows:
                counts[name] = manifest.rows
        rows_out.append((str(ref), result.success, counts, passed, failed, report_path(str(reports_root), ref)))
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


def _run_ingest(ref, lake_root: Path, market_data: dict, debug: bool):
    """Execute the ingest job for ``ref``; the underlying is registered for the run and,
    if the run fails and it was not registered before, removed again."""
    from assets.jobs import INGEST_JOB_NAME
    from assets.partitions import UNDERLYINGS, partition_key
    from m17_platform.definitions import defs

    instance = _instance()
    fail_dead_runs(instance)  # runs of killed `m17 demo` / `m17 ingest` processes are marked failed
    registered = ref.underlying in set(instance.get_dynamic_partitions(UNDERLYINGS.name))
    if not registered:
        instance.add_dynamic_partitions(UNDERLYINGS.name, [ref.underlying])
    run_config = {
        "resources": {
            "lake": {"config": {"root": str(lake_root)}},
            "market_data": {"config": market_data},
        },
        # step failures log at ERROR: the terminal gets one line per failed step (below), the
        # events stay in the instance (./m17 dev); --debug shows Dagster's own log too
        "loggers": {"console": {"config": {"log_level": "WARNING" if debug else "CRITICAL"}}},
    }
    result = None
    try:
        result = defs.resolve_job_def(INGEST_JOB_NAME).execute_in_process(
            partition_key=partition_key(ref), instance=instance, run_config=run_config, raise_on_error=False,
            tags=in_process_tags(),
        )
    finally:
        if (result is None or not result.success) and not registered:
            instance.delete_dynamic_partition(UNDERLYINGS.name, ref.underlying)
            print(f"underlying {ref.underlying} unregistered again: the run failed and it was not registered before")
    return result


def cmd_ingest(args: argparse.Namespace) -> int:
    """Fill the raw partitions of one day x underlying from a source, with a progress bar,
    through the ``ingest`` job (raw assets and their checks, recorded in the Dagster instance).

    Exit status 0 when the run succeeds, 1 when it fails (one line per failed step on
    stderr), 2 for a bad argument or setting (one line, nothing registered or run).
    """
    from m17_platform.lake import PartitionRef

    # the arguments are checked before the asset graph is imported (seconds)
    underlying = checks.underlying(args.underlying)
    day = checks.trading_day(args.date)
    market_data = checks.market_data_config(args)
    checks.check_source(market_data)

    from m17_platform.lake import Lake
    from m17_platform.schemas import RAW_TABLES

    ref = PartitionRef(day, underlying)
    lake_root = Path(args.lake_root or DEFAULT.lake.root)
    started = time.perf_counter()
    print(f"m17 ingest: {ref} from {args.source} into {lake_root}", file=sys.stderr, flush=True)
    result = _run_ingest(ref, lake_root, market_data, getattr(args, "debug", False))
    elapsed = time.perf_counter() - started
    lake = Lake(lake_root)
    print(f"{'table':<22} {'rows':>12}  source")
    for name, spec in RAW_TABLES.items():
        manifest = lake.manifest(spec, ref)
        if manifest is not None:
            print(f"{name:<22} {manifest.rows:>12,}  {manifest.source}")
    evaluations = result.get_asset_check_evaluations()
    failed = [f"{e.asset_key.path[-1]}.{e.check_name}" for e in evaluations if not e.passed]
    print(f"checks: {len(evaluations) - len(failed)}/{len(evaluations)} passed" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                print(f"m17 ingest: step {event.step_key} failed: {step_failure_cause(event.event_specific_data.error)}",
                      file=sys.stderr)
    print(f"wall time {elapsed:.1f} s, peak RSS {_peak_rss_mib():.0f} MiB; run {result.run_id} in {os.environ['DAGSTER_HOME']}")
    return 0 if result.success else 1


def cmd_test(args: argparse.Namespace, extra: list[str]) -> int:
    """Run pytest on the suite (arguments pass through)."""
    env = dict(os.environ)
    env.pop("DAGSTER_HOME", None)
    return subprocess.call([sys.executable, "-m", "pytest", *extra], cwd=PROJECT_ROOT, env=env)


DEV_GRACE_SECONDS = 20.0
"""Seconds the Dagster stack of ``m17 dev`` has to stop after SIGTERM / SIGINT before it is killed."""


def cmd_dev(args: argparse.Namespace) -> int:
    """Start the Dagster UI and daemon on 127.0.0.1 (sensors and schedules run).

    ``dagster dev`` (webserver, daemon, code servers) runs in a process group of its own:
    SIGTERM, SIGINT (Ctrl-C) or SIGHUP to m17 goes to the whole group, and what is left of
    it after :data:`DEV_GRACE_SECONDS` is killed (:func:`m17_platform.supervise.run_in_own_group`).
    First, runs that an ``m17 ingest`` / ``m17 demo`` process was executing when it died are
    marked failed (:func:`m17_platform.runs.fail_dead_runs`).
    """
    from m17_platform.runs import fail_dead_runs
    from m17_platform.supervise import run_in_own_group

    _dagster_home()
    with _instance() as instance:
        for run_id in fail_dead_runs(instance):
            print(f"m17 dev: run {run_id} was left STARTED by a process that is gone: marked failed", flush=True)
    exe = Path(sys.executable).parent / "dagster"
    cmd = [str(exe), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(args.port)]
    print("m17 dev:", " ".join(cmd), flush=True)
    return run_in_own_group(cmd, cwd=PROJECT_ROOT, grace_seconds=DEV_GRACE_SECONDS, name="m17 dev")


def cmd_underlyings(args: argparse.Namespace) -> int:
    """List, add or remove underlying partitions.

    ``add`` validates every name as a ticker first (:func:`m17_platform.symbols.validate_underlying`)
    and registers none if one is bad; ``remove`` takes registered names as they are (so
    a bad name registered earlier can go) and refuses names that are not registered.
    """
    from m17_platform.symbols import UNDERLYING_RULE, validate_underlying

    names: list[str] = []
    if args.action == "add":
        bad = []
        for name in args.names:
            try:
                names.append(validate_underlying(name))
            except ValueError:
                bad.append(name)
        if bad:
            raise UsageError(f"not tickers, none registered: {', '.join(map(repr, bad))}; expected {UNDERLYING_RULE}")
    elif args.action == "remove" and not args.names:
        raise UsageError("remove takes the names to remove")
    from assets.partitions import UNDERLYINGS

    instance = _instance()
    if args.action == "add":
        instance.add_dynamic_partitions(UNDERLYINGS.name, [n for n in dict.fromkeys(names)])
    elif args.action == "remove":
        registered = set(instance.get_dynamic_partitions(UNDERLYINGS.name))
        chosen = [n if n in registered else n.strip().upper() for n in args.names]
        if missing := [n for n, c in zip(args.names, chosen) if c not in registered]:
            raise UsageError(f"not registered, none removed: {', '.join(map(repr, missing))}")
        for name in dict.fromkeys(chosen):
            instance.delete_dynamic_partition(UNDERLYINGS.name, name)
    for name in sorted(instance.get_dynamic_partitions(UNDERLYINGS.name)):
        print(name)
    return 0


def cmd_lake(args: argparse.Namespace) -> int:
    """``m17 lake [list|verify|recover]``: every partition with its rows, source and status
    (ok, stale, broken); ``verify`` checks every file's sha256 too (exit 1 on a problem);
    ``recover`` finishes or removes what killed writers left in ``.staging``."""
    from m17_platform.lake import Lake, PartitionRef
    from m17_platform.lake.health import OK, lake_status
    from m17_platform.settings import DEFAULT

    lake = Lake(args.root or DEFAULT.lake.root)
    if args.action == "recover":
        done = lake.recover()
        for path in done.finished:
            print(f"finished an interrupted commit: {path}")
        for path in done.removed:
            print(f"removed what a killed writer left: {path}")
        print(f"m17 lake recover: {len(done.finished)} finished, {len(done.removed)} removed under {lake.root}")
        return 0
    only = PartitionRef.parse(args.partition) if args.partition else None
    bad = 0
    for status in lake_status(lake, verify=args.action == "verify", only=only):
        rows = "?" if status.rows is None else f"{status.rows:,}"
        print(f"{status.spec.layer:<8} {status.spec.name:<26} {str(status.ref):<16} {rows:>11}  "
              f"{status.status:<6}  {status.source or ''}")
        for problem in status.problems:
            print(f"    {problem}")
        bad += status.status != OK
    if args.action == "verify":
        print(f"m17 lake verify: {'no problems' if not bad else f'{bad} partition(s) with problems'} under {lake.root}")
    return 1 if bad and args.action == "verify" else 0


def _print_results(results, as_json: bool, summary: str) -> None:
    import json

    if as_json:
        print(json.dumps([{"dataset": r.dataset, "notes": r.notes, "rows": r.table.to_dicts()} for r in results], indent=2))
        return
    import polars as pl

    with pl.Config(tbl_rows=50, tbl_cols=20, float_precision=4, tbl_hide_dataframe_shape=True):
        for r in results:
            print(f"== {r.dataset}\n   {r.notes}")
            print(r.table)
    print(summary)


def _fmt(value, spec: str) -> str:
    """``value`` formatted with ``spec``; ``n/a`` for a null (a rule or greek with no rows)."""
    return "n/a" if value is None else format(value, spec)


def cmd_eval(args: argparse.Namespace) -> int:
    """Accuracy against ground truth: aggressor rules, or greeks against a vendor's."""
    if args.what == "greeks" and len(args.paths) != 1:
        raise UsageError(f"greeks takes one file, got {len(args.paths)}")
    from m17_platform import evaluation

    if args.what == "aggressor":
        results = evaluation.eval_aggressor(args.paths)
        parts = []
        for r in results:
            row = r.table.filter(r.table["rule"] == "lee_ready").row(0, named=True)
            parts.append(f"{r.dataset}: lee_ready={_fmt(row['accuracy'], '.4f')} (n={row['n']})")
        summary = "summary: " + "; ".join(parts)
    else:
        results = evaluation.eval_greeks(args.paths[0])
        parts = []
        for r in results:
            delta = r.table.filter(r.table["quantity"] == "delta")
            if delta.height:
                parts.append(f"{r.dataset}: median|delta-vendor|={_fmt(delta['median_abs_diff'][0], '.5f')} "
                             f"(n={delta['n'][0]})")
        summary = "summary: " + "; ".join(parts)
    _print_results(results, args.json, summary)
    return 0


def cmd_bench(args: argparse.Namespace, extra: list[str]) -> int:
    """Run ``benchmarks/<name>.py`` (its own flags: --size small|full, --json)."""
    import importlib

    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    try:
        module = importlib.import_module(f"benchmarks.{args.name}")
    except ModuleNotFoundError:
        print(f"m17 bench: no benchmark named {args.name!r} (see benchmarks/)", file=sys.stderr)
        return 2
    return int(module.main(extra) or 0)


def cmd_docs(args: argparse.Namespace) -> int:
    """Regenerate docs/data_dictionary.md and docs/signals.md (the level tables) from the schemas."""
    from m17_platform.levels.docs import signals_markdown
    from m17_platform.schemas import data_dictionary_markdown

    for name, text in (("data_dictionary.md", data_dictionary_markdown()), ("signals.md", signals_markdown())):
        path = PROJECT_ROOT / "docs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path)
    return 0


def cmd_signals(args: argparse.Namespace) -> int:
    """``m17 signals build|export``: level signals as of an instant (compared with the lake's
    full day; exit 1 on a mismatch), or a date range's signals in one Parquet file."""
    from m17_platform.levels import commands

    if args.action == "build":
        return commands.run_signals_build(args.partition, args.as_of, args.lake_root, args.out)
    return commands.run_signals_export(args.start, args.end, args.out, args.underlying, args.lake_root,
                                       progress=not args.quiet)


def cmd_validate(args: argparse.Namespace) -> int:
    """``m17 validate signals``: findings INFO / WARN / ERROR per partition; exit 1 on an ERROR."""
    from m17_platform.levels import commands

    return commands.run_validate_signals(args.partition, args.lake_root)


def _overrides(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {pair!r} is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def cmd_capture(args: argparse.Namespace) -> int:
    """Capture the websocket feeds into the landing zone until stopped."""
    underlyings = [checks.underlying(u) for u in args.underlying]
    from m17_platform.capture.commands import capture_settings, run_capture

    try:
        settings = capture_settings(_overrides(args.set))
    except ValueError as exc:
        raise UsageError(f"--set: {exc}") from None
    return run_capture(underlyings, all_contracts=args.all_contracts,
                       landing_root=args.landing_root, duration_s=args.duration, settings=settings)


def cmd_replay(args: argparse.Namespace) -> int:
    """Serve a recording or a lake partition over the websocket protocol, or record the live feeds."""
    from m17_platform.capture import commands

    if args.action == "serve":
        if bool(args.in_dir) == bool(args.partition):
            raise UsageError("serve: give exactly one of --in-dir DIR or --partition DATE|UNDERLYING")
        return commands.run_replay_serve(in_dir=args.in_dir, partition=args.partition, lake_root=args.lake_root,
                                         bind=args.bind, speed=args.speed, underlyings=None)
    if not args.out_dir:
        raise UsageError("record: --out-dir is required")
    subs = {feed: [c for c in (getattr(args, feed) or "").split(",") if c] for feed in ("stocks", "options")}
    return commands.run_replay_record(out_dir=args.out_dir, subscriptions=subs, duration_s=args.duration)


def _parser() -> argparse.ArgumentParser:
    """The ``m17`` argument parser (usage errors are one line, exit 2)."""
    parser = OneLineParser(prog="m17", description="m17_platform: options market-microstructure data platform")
    parser.add_argument("--debug", action="store_true",
                        help="before the command: full tracebacks and Dagster's step logs instead of one line")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="materialize the asset graph for the bundled sample partitions")
    demo.add_argument("--lake-root", default=None, help="lake root (default data/lake)")
    demo.add_argument("--reports-root", default=None, help="reports folder (default data/reports)")
    sub.add_parser("test", help="run the test suite (arguments pass through to pytest)")
    ing = sub.add_parser("ingest", help="fill one day x underlying's raw partitions from a source (ingest job)")
    ing.add_argument("--source", required=True, choices=["samples", "synthetic", "polygon", "flatfiles", "databento"])
    ing.add_argument("--date", required=True, help="trade date, YYYY-MM-DD (an XNYS session)")
    ing.add_argument("--underlying", required=True)
    ing.add_argument("--lake-root", default=None, help="lake root (default data/lake)")
    ing.add_argument("--set", action="append", metavar="KEY=VALUE", help="market_data resource config (repeatable)")
    ing.add_argument("--quiet", action="store_true", help="no progress bar")
    ing.add_argument("--allow-empty", action="store_true",
                     help=f"let zero rows replace a partition that holds rows (market_data {checks.ALLOW_EMPTY_KEY}=true)")
    dev = sub.add_parser("dev", help="Dagster UI and daemon on 127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    und = sub.add_parser("underlyings", help="list, add or remove underlying partitions")
    und.add_argument("action", choices=["list", "add", "remove"])
    und.add_argument("names", nargs="*")
    lake = sub.add_parser("lake", help="partitions in the lake: rows, source, status; verify checksums; recover")
    lake.add_argument("action", nargs="?", choices=["list", "verify", "recover"], default="list")
    lake.add_argument("--partition", default=None, help="only this partition, DATE|UNDERLYING")
    lake.add_argument("--root", default=None, help="lake root (default data/lake)")
    sub.add_parser("docs", help="regenerate docs/data_dictionary.md and docs/signals.md from the schemas")
    sig = sub.add_parser("signals", help="level signals: as of an instant (build), a date range to a file (export)")
    sig_sub = sig.add_subparsers(dest="action", required=True)
    sig_build = sig_sub.add_parser("build", help="the partition's signals from its lake inputs before an instant")
    sig_build.add_argument("--partition", required=True, help="DATE|UNDERLYING, e.g. 2025-11-10|SPY")
    sig_build.add_argument("--as-of", required=True,
                           help="HH:MM:SS America/New_York on the trade date (or 'YYYY-MM-DD HH:MM:SS' the day before)")
    sig_build.add_argument("--lake-root", default=None, help="lake root (default data/lake)")
    sig_build.add_argument("--out", default=None, help="write the signals to this .parquet file")
    sig_export = sig_sub.add_parser("export", help="every level_signals partition of a date range in one file")
    sig_export.add_argument("--start", required=True, help="first trade date, YYYY-MM-DD")
    sig_export.add_argument("--end", required=True, help="last trade date, YYYY-MM-DD (inclusive)")
    sig_export.add_argument("--underlying", default=None, help="only this underlying")
    sig_export.add_argument("--lake-root", default=None, help="lake root (default data/lake)")
    sig_export.add_argument("--out", required=True, help="the .parquet file (written atomically)")
    sig_export.add_argument("--quiet", action="store_true", help="no progress bar")
    val = sub.add_parser("validate", help="validate a gold dataset: rows, nulls, ranges, distributions, look-ahead")
    val.add_argument("what", choices=["signals"])
    val.add_argument("--partition", default=None, help="only this partition, DATE|UNDERLYING (default: every one)")
    val.add_argument("--lake-root", default=None, help="lake root (default data/lake)")
    ev = sub.add_parser("eval", help="accuracy against ground truth: aggressor rules, greeks vs a vendor")
    ev.add_argument("what", choices=["aggressor", "greeks"])
    ev.add_argument("paths", nargs="+", help="LOBSTER message files / DBN files (aggressor); a Cboe calcs file or TDA chain (greeks)")
    ev.add_argument("--json", action="store_true", help="print the tables as JSON")
    bench = sub.add_parser("bench", help="benchmarks against peer libraries (benchmarks/NAME.py)")
    bench.add_argument("name")
    cap = sub.add_parser("capture", help="capture Polygon websocket trades and quotes into the landing zone")
    cap.add_argument("--underlying", action="append", required=True, help="underlying to capture (repeatable)")
    cap.add_argument("--all-contracts", action="store_true", help="every listed contract, not the ATM +- N 0DTE window")
    cap.add_argument("--landing-root", default=None, help="landing zone (default $M17_LANDING_ROOT or data/landing)")
    cap.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: until Ctrl-C)")
    cap.add_argument("--set", action="append", metavar="KEY=VALUE", help="CaptureSettings override, e.g. batch_seconds=1")
    rep = sub.add_parser("replay", help="serve a recording or a lake partition over the websocket protocol, or record one")
    rep.add_argument("action", choices=["serve", "record"])
    rep.add_argument("--in-dir", default=None, help="serve: a recording folder")
    rep.add_argument("--partition", default=None, help="serve: a raw lake partition, DATE|UNDERLYING")
    rep.add_argument("--lake-root", default=None, help="serve --partition: lake root (default data/lake)")
    rep.add_argument("--bind", default="127.0.0.1:9000", help="serve: host:port")
    rep.add_argument("--speed", type=float, default=DEFAULT_REPLAY_SPEED, help="serve: event time per wall second (0: as fast as possible)")
    rep.add_argument("--out-dir", default=None, help="record: the recording folder")
    rep.add_argument("--stocks", default=None, help="record: stocks channels, e.g. T.SPY,Q.SPY")
    rep.add_argument("--options", default=None, help="record: options channels, e.g. T.O:SPY251110C00685000")
    rep.add_argument("--duration", type=float, default=None, help="record: stop after this many seconds")
    return parser


HANDLERS = {"demo": cmd_demo, "ingest": cmd_ingest, "dev": cmd_dev, "underlyings": cmd_underlyings, "lake": cmd_lake,
            "docs": cmd_docs, "eval": cmd_eval, "capture": cmd_capture, "replay": cmd_replay,
            "signals": cmd_signals, "validate": cmd_validate}


def main(argv: list[str] | None = None) -> int:
    """Run one ``m17`` command; returns its exit status.

    A bad file, argument or setting is one line on stderr (``m17 COMMAND: ...``) and exit
    status 2; a bug is one line and 1 (:mod:`m17_platform.cli_errors`). ``m17 --debug
    COMMAND ...`` shows the traceback instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = False
    while argv and argv[0] == "--debug":
        debug = True
        argv.pop(0)
    prog = f"m17 {argv[0]}" if argv and argv[0] in {*HANDLERS, "test", "bench"} else "m17"
    try:
        if argv and argv[0] == "test":
            return cmd_test(argparse.Namespace(command="test"), argv[1:])
        if argv and argv[0] == "bench" and len(argv) > 1 and not argv[1].startswith("-"):
            return cmd_bench(argparse.Namespace(command="bench", name=argv[1]), argv[2:])
        args = _parser().parse_args(argv)
        args.debug = debug or args.debug
        return HANDLERS[args.command](args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        return report(exc, prog)


if __name__ == "__main__":
    sys.exit(main())
