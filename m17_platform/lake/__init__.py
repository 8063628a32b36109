"""The lake: hive-partitioned Parquet partitions with manifests, committed atomically
(:mod:`m17_platform.lake.store`), their part files (:mod:`~m17_platform.lake.parts`),
the commit journal (:mod:`~m17_platform.lake.commit`) and manifests
(:mod:`~m17_platform.lake.manifest`)."""

from m17_platform.lake.commit import COMMIT_LOG, STAGING, Recovery, fsync_dir
from m17_platform.lake.manifest import (
    CHECKS_NAME,
    MANIFEST_NAME,
    PART_NAME,
    FileEntry,
    Manifest,
    PartitionRef,
    file_sha256,
    verified_sha256,
)
from m17_platform.lake.store import DEFAULT_INGEST, Lake, StagedPartition

__all__ = [
    "CHECKS_NAME", "COMMIT_LOG", "DEFAULT_INGEST", "MANIFEST_NAME", "PART_NAME", "STAGING", "FileEntry", "Lake",
    "Manifest", "PartitionRef", "Recovery", "StagedPartition", "file_sha256", "fsync_dir", "verified_sha256",
]
