"""Gold layer, level physics and outcome labels: levels, touches, physics, labels and
signals of one trading day x underlying, computed by one chain and committed together.

The step reads its inputs' partitions (:data:`m17_platform.levels.checks.INPUTS`; the
SMA warms up from earlier partitions of the same underlying), runs
:func:`m17_platform.levels.checks.run_chain` and commits the five tables at once, each
manifest naming the inputs it was computed from. The checks of ``level_signals``
recompute from the inputs (:func:`m17_platform.levels.checks.check_signals`), among them
``no_lookahead``.
"""

from dagster import AssetExecutionContext, AssetSpec, DataVersion, MaterializeResult, multi_asset

from assets.checks import build_partition_checks, table_key
from assets.metadata import column_schema, manifest_metadata
from assets.partitions import DAY_BY_UNDERLYING, partition_ref
from m17_platform.levels import checks as level_checks
from m17_platform.levels import lake_inputs
from m17_platform.levels.schemas import LEVEL_SIGNALS, LEVEL_TABLES
from m17_platform.levels.settings import LevelSettings
from m17_platform.schemas import GOLD, table
from resources import LakeResource

SETTINGS = LevelSettings()
INPUT_SPECS = [table(name) for name in level_checks.INPUTS]


@multi_asset(
    name="level_physics_chain",
    specs=[AssetSpec(key=table_key(spec), group_name=GOLD, partitions_def=DAY_BY_UNDERLYING, description=spec.description,
                     deps=[table_key(s) for s in INPUT_SPECS],
                     metadata={"dagster/column_schema": column_schema(spec), "sort_key": ", ".join(spec.sort_key)},
                     kinds={"parquet", "polars", "numba"}) for spec in LEVEL_TABLES.values()],
    description="levels, touches, barrier / tape / fuel physics, approach, outcome labels and signals of one day, "
    "committed together",
)
def level_physics_chain(context: AssetExecutionContext, lake: LakeResource):
    ref, store = partition_ref(context.partition_key), lake.lake()
    result = level_checks.run_chain(lake_inputs.level_inputs(store, ref, SETTINGS), ref.trade_date, ref.underlying, SETTINGS)
    shas = store.input_shas(INPUT_SPECS, ref)
    source = "gold from " + ", ".join(f"{s.layer}.{s.name}" for s in INPUT_SPECS)
    staged = [store.stage(spec, ref, [result.tables[name]], source=source, stats=result.stats.get(name, {}), inputs=shas)
              for name, spec in LEVEL_TABLES.items()]
    for manifest in store.commit(staged):
        spec = LEVEL_TABLES[manifest.table]
        yield MaterializeResult(asset_key=table_key(spec), data_version=DataVersion(manifest.sha256),
                                metadata={**manifest_metadata(manifest, str(store.partition_dir(spec, ref))),
                                          "seconds": round(result.seconds.get(manifest.table, 0.0), 3)})


LEVEL_CHECKS = [
    build_partition_checks(
        LEVEL_SIGNALS,
        level_checks.CHECKS,
        lambda frame, ref, inputs: level_checks.check_signals(frame, inputs, ref.trade_date, ref.underlying, SETTINGS),
        name="level_signals_checks",
        inputs=INPUT_SPECS,
    )
]
LEVEL_ASSETS = [level_physics_chain]
