"""What a committed partition is: its key, its files with checksums, its manifest.

The manifest (``_manifest.json``) is the partition's commit record: readers trust
only the files it names, and check each one's sha256 before use. It describes the
data only: no write time and no timing, so writing the same rows again writes the same
bytes (the write times are in the lake's commit log, :mod:`m17_platform.lake.commit`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from m17_platform.errors import LakeError
from m17_platform.symbols import validate_underlying

MANIFEST_NAME = "_manifest.json"
CHECKS_NAME = "_checks.json"
PART_NAME = "part-00000.parquet"


@dataclass(frozen=True)
class PartitionRef:
    """A lake partition: one trade date of one underlying.

    Raises
    ------
    ValueError
        For an underlying that is not a ticker (:func:`m17_platform.symbols.validate_underlying`).
    """

    trade_date: dt.date
    underlying: str

    def __post_init__(self) -> None:
        if validate_underlying(self.underlying) != self.underlying:
            raise ValueError(f"underlying {self.underlying!r} of a partition is written "
                             f"{validate_underlying(self.underlying)!r}")

    @property
    def hive_path(self) -> str:
        return f"trade_date={self.trade_date.isoformat()}/underlying={self.underlying}"

    @classmethod
    def parse(cls, key: str) -> PartitionRef:
        """``'DATE|UNDERLYING'`` (e.g. ``'2025-11-10|SPY'``) as a PartitionRef.

        Raises
        ------
        ValueError
            With one line naming what is wrong (format, date or underlying).
        """
        day, sep, underlying = key.partition("|")
        if not sep:
            raise ValueError(f"partition {key!r} is not DATE|UNDERLYING, e.g. 2025-11-10|SPY")
        try:
            trade_date = dt.date.fromisoformat(day.strip())
        except ValueError:
            raise ValueError(f"partition {key!r}: date {day!r} is not YYYY-MM-DD") from None
        return cls(trade_date, underlying.strip())

    def __str__(self) -> str:
        return f"{self.trade_date.isoformat()}|{self.underlying}"


@dataclass(frozen=True)
class FileEntry:
    """One Parquet file of a partition: name, rows, bytes and sha256 (hex) of its bytes."""

    name: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What a partition holds and where it came from (``_manifest.json``).

    rows : total rows; files : Parquet files with checksums; source : where the rows
    came from; ts_min_ns / ts_max_ns : range of ``ts_ns`` (ns since epoch UTC) when the
    table has it; stats : counts the producer reported (malformed rows, flagged rows,
    ...); inputs : ``layer.table`` -> sha256 of each partition this one was computed
    from (empty for raw tables), so a replaced input shows this partition as stale;
    extras : text files beside the Parquet -> their sha256.
    """

    table: str
    layer: str
    trade_date: str
    underlying: str
    rows: int
    files: list[FileEntry]
    source: str
    sort_key: list[str]
    columns: dict[str, str]
    ts_min_ns: int | None = None
    ts_max_ns: int | None = None
    stats: dict[str, int | float | str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    extras: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest; keys this version does not know (an older ``written_at``)
        are ignored.

        Raises
        ------
        ValueError
            If the text is not a complete manifest (truncated, not JSON, fields missing).
        """
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        try:
            data["files"] = [FileEntry(**f) for f in data["files"]]
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"fields missing or wrong: {exc}") from None

    @property
    def sha256(self) -> str:
        """Checksum of the partition: the first file's sha256 when there is one file."""
        if len(self.files) == 1:
            return self.files[0].sha256
        h = hashlib.sha256()
        for f in self.files:
            h.update(f.sha256.encode())
        return h.hexdigest()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# (path, inode, size, mtime ns) -> sha256 of the bytes, for files this process already hashed
_VERIFIED: dict[tuple[str, int, int, int], str] = {}
_VERIFIED_LOCK = threading.Lock()


def verified_sha256(path: Path) -> str:
    """``file_sha256(path)``, cached by file identity (path, inode, size, mtime): a
    partition read many times in one process is hashed once, and a file changed in
    place (new size or mtime) or replaced (new inode) is hashed again.

    Raises
    ------
    OSError
        If the file cannot be read.
    """
    st = os.stat(path)
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    with _VERIFIED_LOCK:
        known = _VERIFIED.get(key)
    if known is not None:
        return known
    digest = file_sha256(path)
    with _VERIFIED_LOCK:
        _VERIFIED[key] = digest
    return digest


def verify_file(path: Path, entry: FileEntry) -> None:
    """Check one file of a partition against its manifest entry.

    Raises
    ------
    LakeError
        One line naming the file: missing, or its sha256 differs from the manifest's.
    """
    try:
        actual = verified_sha256(path)
    except FileNotFoundError:
        raise LakeError(f"{path}: missing, though the partition's manifest names it") from None
    if actual != entry.sha256:
        raise LakeError(f"{path}: sha256 {actual[:16]}… does not match the manifest's {entry.sha256[:16]}… "
                        "(the file changed after it was committed)")


def read_manifest(path: Path) -> Manifest | None:
    """The manifest at ``path``, or ``None`` when there is no such file.

    Raises
    ------
    LakeError
        If the file exists but is not a complete manifest (truncated, not JSON).
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return Manifest.from_json(text)
    except ValueError as exc:
        raise LakeError(f"{path}: the manifest is truncated or not a manifest ({exc})") from None
