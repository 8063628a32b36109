import polars as pl
import pytest

from m17_platform import schemas
from m17_platform.errors import SchemaError


def test_every_column_has_a_unit_and_description():
    for spec in schemas.ALL_TABLES.values():
        for field in spec.schema:
            meta = field.metadata or {}
            assert meta.get(b"unit"), f"{spec.name}.{field.name} has no unit"
            assert meta.get(b"description"), f"{spec.name}.{field.name} has no description"


def test_data_model_conventions():
    for spec in schemas.ALL_TABLES.values():
        names = spec.columns
        if "ts_ns" in names:
            assert spec.schema.field("ts_ns").type == "int64"
        for price in ("price", "bid", "ask", "strike"):
            if price in names:
                assert spec.schema.field(price).type == "double" and spec.unit(price) == "dollars"
        if "option_symbol" in names:
            assert {"underlying", "root", "expiration", "strike", "right"} <= set(names)
        assert "underlying" in names


def test_conform_names_table_origin_and_column():
    frame = schemas.empty_frame(schemas.STOCK_TRADES).with_columns(pl.Series("price", [], dtype=pl.String))
    frame = pl.concat([frame, frame])  # still zero rows: casting succeeds
    assert schemas.conform(frame, schemas.STOCK_TRADES).num_rows == 0
    bad = pl.DataFrame({c: [None] for c in schemas.RATES.columns})
    with pytest.raises(SchemaError, match=r"table 'rates' from file.csv: column 'date' is required but has 1 nulls"):
        schemas.conform(bad, schemas.RATES, origin="file.csv")


def test_unknown_table_lists_known_ones():
    with pytest.raises(KeyError, match="known tables"):
        schemas.table("nope")


def test_data_dictionary_is_in_sync_with_schemas():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "data_dictionary.md"
    assert path.read_text() == schemas.data_dictionary_markdown(), "run ./m17 docs"
