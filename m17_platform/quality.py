"""Data-quality checks of lake tables, run as Great Expectations suites.

(Being written: see the module's final version.)
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one named quality check on one table partition.

    name : check name (``schema``, ``nulls``, ``positive_prices``, ``bid_le_ask``,
        ``in_session``, ``sorted``, ``duplicates``).
    passed : whether the check passed.
    severity : ``ERROR`` (the partition is unusable) or ``WARN`` (usable, flagged).
    description : one line saying what was checked, with the threshold.
    metadata : statistics (counts, rates as fractions, thresholds), JSON-serialisable scalars.
    """

    name: str
    passed: bool
    severity: str
    description: str
    metadata: dict = field(default_factory=dict)
