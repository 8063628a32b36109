"""Sums in a fixed order (m17_platform.ordered): the same bits whatever the thread count or
the order the rows arrive in, and equal to adding the values one at a time."""

import functools
import operator
import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from m17_platform.flow.classifiers import most_common
from m17_platform.ordered import group_sums, ordered_mean, ordered_sum, run_starts, run_sums


def _frame(n: int = 20_000, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "k": rng.integers(0, 40, n), "j": rng.integers(0, 3, n), "t": np.arange(n),
        "x": rng.standard_normal(n) * 10.0 ** rng.integers(-3, 9, n), "i": rng.integers(-50, 50, n),
    })


def _sequential(values) -> float:
    return functools.reduce(operator.add, values, 0.0)


def test_ordered_sum_adds_one_value_at_a_time_in_row_order():
    frame = _frame()
    got = frame.group_by("k", maintain_order=True).agg(
        ordered_sum(pl.col("x")).alias("s"), ordered_sum(pl.col("x").filter(pl.col("j") == 9)).alias("none"),
        ordered_mean(pl.col("x")).alias("m"))
    for k, s, none, m in got.iter_rows():
        values = frame.filter(pl.col("k") == k).get_column("x").to_list()
        assert s == _sequential(values)
        assert none == 0.0
        assert m == _sequential(values) / len(values)


def test_group_sums_are_the_same_bits_whatever_order_the_rows_arrive_in():
    frame = _frame()
    expected = group_sums(frame, ["k", "j"], ["x", "i"], order=["t"], count="n")
    for seed in range(3):
        shuffled = frame[np.random.default_rng(seed).permutation(frame.height)]
        assert_frame_equal(group_sums(shuffled, ["k", "j"], ["x", "i"], order=["t"], count="n"), expected,
                           check_exact=True)
    assert expected.get_column("n").sum() == frame.height
    sequential = frame.sort(["k", "j", "t"]).group_by(["k", "j"], maintain_order=True).agg(ordered_sum(pl.col("x")))
    assert expected.get_column("x").to_list() == sequential.get_column("x").to_list()
    assert expected.schema["i"] == pl.Int64 and expected.schema["x"] == pl.Float64
    np.testing.assert_allclose(
        expected.get_column("x").to_numpy(),
        frame.group_by(["k", "j"]).agg(pl.col("x").sum()).sort(["k", "j"]).get_column("x").to_numpy(), rtol=1e-9)


def test_run_sums_count_nulls_as_zero_and_keep_empty_frames_empty():
    frame = pl.DataFrame({"g": ["a", "a", None, None, "b"], "x": [1.5, None, 2.0, 3.0, None]})
    starts = run_starts(frame, ["g"])
    assert starts.tolist() == [0, 2, 4]
    assert run_sums(frame, starts, ["x"]).get_column("x").to_list() == [1.5, 5.0, 0.0]
    empty = frame.clear()
    assert group_sums(empty, ["g"], ["x"], count="n").height == 0


def test_most_common_breaks_ties_the_same_way_every_time():
    frame = pl.DataFrame({"g": [1] * 6 + [2] * 3, "p": ["MID", "A", "B", "A", "B", "MID", None, None, "A"]})
    for _ in range(20):
        got = frame.group_by("g", maintain_order=True).agg(most_common(pl.col("p")).alias("p"))
        assert got.get_column("p").to_list() == ["A", None]


_SCRIPT = """
import sys, numpy as np, polars as pl
sys.path.insert(0, {root!r})
from m17_platform.ordered import group_sums, ordered_sum
rng = np.random.default_rng(1)
n = 400_000
frame = pl.DataFrame({{"k": rng.integers(0, 30, n), "x": rng.standard_normal(n) * 1e6}})
a = group_sums(frame, ["k"], ["x"]).get_column("x").to_numpy()
b = frame.group_by("k").agg(ordered_sum(pl.col("x"))).sort("k").get_column("x").to_numpy()
c = frame.group_by("k").agg(pl.col("x").sum()).sort("k").get_column("x").to_numpy()
print(a.tobytes().hex(), b.tobytes().hex(), c.tobytes().hex())
"""


@pytest.mark.slow
def test_ordered_sums_do_not_depend_on_the_thread_count():
    """Polars' own group sum does (the reason for this module); ours do not."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    outs = []
    for threads in ("1", "4"):
        proc = subprocess.run([sys.executable, "-c", _SCRIPT.format(root=root)], capture_output=True, text=True,
                              env=dict(os.environ, POLARS_MAX_THREADS=threads), timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append(proc.stdout.split())
    assert outs[0][0] == outs[1][0] and outs[0][1] == outs[1][1]
