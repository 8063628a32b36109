"""Committing staged partitions together, and finishing what a killed writer left.

A writer builds each new partition in a stage folder under ``<root>/.staging`` (same
filesystem as the lake), holding an exclusive ``flock`` on ``<stage>.lock`` while it
lives. Committing a set of stages:

1. the journal ``commit-<id>.json`` (every stage, its final place, and where the
   partition it replaces goes) is written, fsynced and renamed into ``.staging``
   under a held lock: **this is the commit point**;
2. each final partition is renamed aside and its stage renamed into place;
3. the replaced partitions are deleted, then the journal.

A run killed before step 1 changes nothing: its stages are orphans. A run killed
after it is finished by the next writer or by :func:`recover` (roll forward: step 2
is idempotent). Locks tell a dead writer's leftovers from a live one's: ``flock`` is
released by the kernel when a process dies, so whatever can be locked is an orphan.
Each commit is appended to ``<root>/_commits.jsonl`` (time, partitions, sha256): the
lake's write history, kept out of the partitions so identical data gives identical files.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from m17_platform.errors import LakeError

STAGING = ".staging"
COMMIT_LOG = "_commits.jsonl"


def fsync_dir(path: Path) -> None:
    """fsync a folder, so a rename into it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """fsync a file's bytes."""
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


class _Lock:
    """An exclusive ``flock`` on a lock file, held until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        while True:  # the file may be removed by a recovery between open and flock: lock what is there
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        self._fd: int | None = fd

    @staticmethod
    def try_take(path: Path) -> _Lock | None:
        """The lock if nobody holds it (its owner is gone), else ``None``."""
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        lock = _Lock.__new__(_Lock)
        lock.path, lock._fd = path, fd
        return lock

    def release(self, *, remove: bool = True) -> None:
        if self._fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


@dataclass
class Stage:
    """A folder (or file) being built under ``.staging`` by a live writer, to be put at
    ``final`` by a commit."""

    path: Path
    final: Path
    lock: _Lock = field(repr=False)

    def discard(self) -> None:
        """Delete the stage and drop its lock (nothing in the lake changes)."""
        remove_path(self.path)
        self.lock.release()


def new_stage(root: Path, name: str, final: Path, *, folder: bool = True) -> Stage:
    """A fresh, locked stage under ``<root>/.staging`` for what will be ``final``."""
    staging = root / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    path = staging / f"{name}-{uuid.uuid4().hex}"
    lock = _Lock(path.with_name(path.name + ".lock"))
    if folder:
        path.mkdir()
    return Stage(path, final, lock)


def remove_path(path: Path) -> None:
    """Delete a file or a folder tree (whichever it is; nothing if it is gone)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _apply(entry: dict) -> None:
    """Step 2 for one journal entry, idempotent: replaced partition aside, stage in place."""
    stage, final, trash = Path(entry["stage"]), Path(entry["final"]), Path(entry["trash"])
    if not stage.exists():
        return  # already in place
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        os.rename(final, trash)
    os.rename(stage, final)
    fsync_dir(final.parent)


def _finish(journal: Path, entries: list[dict]) -> None:
    for entry in entries:
        _apply(entry)
    for entry in entries:
        remove_path(Path(entry["trash"]))
    journal.unlink(missing_ok=True)
    fsync_dir(journal.parent)


def commit(root: Path, stages: Sequence[Stage], log: Sequence[dict]) -> str:
    """Put every stage in place together (see the module doc); returns the commit time
    (UTC ISO-8601). ``log`` is what the commit log line records of each partition.

    Raises
    ------
    LakeError
        If the journal cannot be written (nothing changed) or a rename fails after the
        commit point (the next writer or :func:`recover` finishes it).
    """
    staging = root / STAGING
    commit_id = uuid.uuid4().hex
    journal = staging / f"commit-{commit_id}.json"
    lock = _Lock(staging / f"commit-{commit_id}.lock")
    entries = [{"stage": str(s.path), "final": str(s.final), "trash": str(staging / f"replaced-{uuid.uuid4().hex}")}
               for s in stages]
    try:
        tmp = staging / f"commit-{commit_id}.tmp"
        tmp.write_text(json.dumps(entries))
        fsync_file(tmp)
        os.rename(tmp, journal)
        fsync_dir(staging)
    except OSError as exc:
        lock.release()
        raise LakeError(f"could not write the commit journal under {staging}: {exc}") from exc
    try:
        _finish(journal, entries)
    except OSError as exc:
        lock.release(remove=False)
        raise LakeError(f"commit {commit_id} stopped after its commit point ({exc}); "
                        "the next write or `m17 lake recover` finishes it") from exc
    for stage in stages:
        stage.lock.release()
    lock.release()
    committed_at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    with open(root / COMMIT_LOG, "a") as fh:
        fh.write(json.dumps({"committed_at": committed_at, "partitions": list(log)}, sort_keys=True) + "\n")
    return committed_at


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover` did: commits finished (their final paths), orphan stages
    of dead writers deleted (paths)."""

    finished: list[Path]
    removed: list[Path]


def recover(root: Path) -> Recovery:
    """Finish the commits whose writer died after the commit point, delete the stages
    of writers that died before it; leave live writers' stages and commits alone."""
    staging = root / STAGING
    finished: list[Path] = []
    removed: list[Path] = []
    if not staging.exists():
        return Recovery(finished, removed)
    for journal in sorted(staging.glob("commit-*.json")):
        lock = _Lock.try_take(journal.with_suffix(".lock")) or _orphan_lock(journal.with_suffix(".lock"))
        if lock is None:
            continue
        try:
            entries = json.loads(journal.read_text())
            _finish(journal, entries)
            finished += [Path(e["final"]) for e in entries]
        finally:
            lock.release()
    for path in sorted(staging.iterdir()):
        if path.name.endswith((".lock", ".json")) or path.name.startswith("replaced-"):
            continue
        lock_path = path.with_suffix(".lock") if path.name.startswith("commit-") else path.with_name(path.name + ".lock")
        lock = _Lock.try_take(lock_path) or _orphan_lock(lock_path)
        if lock is None:
            continue
        remove_path(path)
        lock.release()
        removed.append(path)
    for lock_path in staging.glob("*.lock"):  # locks whose stage is gone and whose owner died
        owner = lock_path.with_name(lock_path.name.removesuffix(".lock"))
        if not owner.exists() and not lock_path.with_suffix(".json").exists():
            stale = _Lock.try_take(lock_path)
            if stale is not None:
                stale.release()
    for origin in staging.glob("replaced-*.origin"):  # a swap of the lake's first version, killed midway
        trash, final = origin.with_suffix(""), Path(origin.read_text())
        if trash.exists() and not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(trash, final)
            finished.append(final)
        origin.unlink()
    for trash in staging.glob("replaced-*"):  # a commit deletes its journal only after its trash
        if not any(trash.name in j.read_text() for j in staging.glob("commit-*.json")):
            remove_path(trash)
            removed.append(trash)
    return Recovery(finished, removed)


def _orphan_lock(path: Path) -> _Lock | None:
    """A stage or journal with no lock file at all was left by a writer that died
    between creating it and its lock (or by an older version): take a fresh lock."""
    if path.exists():
        return None
    return _Lock(path)
