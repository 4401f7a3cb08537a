"""Unattended imports: a local directory and an S3-compatible bucket prefix, polled.

A file is imported once its size (or ETag) is the same on two consecutive scans, so a file
still being written is not read half-way. Re-imports are no-ops (the job checksum), and a
restated export (same name, new content) is a new job whose version supersedes the old rows.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

from services.ingest.importer import Importer, ImportResult

logger = logging.getLogger(__name__)
SUFFIXES = (".csv", ".csv.gz", ".gz", ".parquet", ".json", ".jsonl", ".ndjson", ".jsonl.gz")


def _wanted(name: str) -> bool:
    return name.lower().endswith(SUFFIXES) and not name.startswith(".")


class DirectoryWatcher:
    """Imports new or changed export files under a directory (recursively)."""

    def __init__(self, importer: Importer, directory: Path) -> None:
        self.importer = importer
        self.directory = Path(directory)
        self._last: dict[Path, tuple[int, int]] = {}
        self._done: dict[Path, tuple[int, int]] = {}

    async def scan_once(self) -> list[ImportResult]:
        results = []
        current = {}
        for path in sorted(self.directory.rglob("*")):
            if path.is_file() and _wanted(path.name):
                stat = path.stat()
                current[path] = (stat.st_size, stat.st_mtime_ns)
        for path, signature in current.items():
            stable = self._last.get(path) == signature
            if stable and self._done.get(path) != signature:
                results.append(await self._import(path))
                self._done[path] = signature
        self._last = current
        return results

    async def _import(self, path: Path) -> ImportResult:
        try:
            result = await self.importer.import_files([path])
        except Exception as exc:  # noqa: BLE001 - an unreadable file is reported, not fatal
            logger.warning(
                "watched file not imported",
                extra={"fields": {"path": str(path), "error": str(exc)}},
            )
            return ImportResult(job_id="", status="failed", error=str(exc))
        logger.info(
            "watched file imported",
            extra={"fields": {"path": str(path), "job_id": result.job_id, "status": result.status}},
        )
        return result


class S3Watcher:
    """Imports new or changed objects under `s3://bucket/prefix` (boto3's standard config)."""

    def __init__(self, importer: Importer, url: str, client: Any | None = None) -> None:
        if not url.startswith("s3://"):
            raise ValueError(f"{url!r} is not an s3://bucket/prefix URL")
        bucket, _, prefix = url[5:].partition("/")
        self.importer = importer
        self.bucket, self.prefix = bucket, prefix
        self._client = client
        self._last: dict[str, str] = {}
        self._done: dict[str, str] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def _list(self) -> dict[str, str]:
        found = {}
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                if _wanted(item["Key"].rsplit("/", 1)[-1]):
                    found[item["Key"]] = item["ETag"]
        return found

    async def scan_once(self) -> list[ImportResult]:
        current = await asyncio.to_thread(self._list)
        results = []
        for key, etag in sorted(current.items()):
            if self._last.get(key) == etag and self._done.get(key) != etag:
                results.append(await self._import(key))
                self._done[key] = etag
        self._last = current
        return results

    async def _import(self, key: str) -> ImportResult:
        with tempfile.TemporaryDirectory(prefix="finfocus-s3-") as tmp:
            local = Path(tmp) / key.rsplit("/", 1)[-1]
            await asyncio.to_thread(self.client.download_file, self.bucket, key, str(local))
            try:
                result = await self.importer.import_files([local])
            except Exception as exc:  # noqa: BLE001 - an object that cannot be imported is reported, not fatal to the watcher
                logger.warning(
                    "s3 object not imported", extra={"fields": {"key": key, "error": str(exc)}}
                )
                return ImportResult(job_id="", status="failed", error=str(exc))
        logger.info(
            "s3 object imported",
            extra={"fields": {"key": key, "job_id": result.job_id, "status": result.status}},
        )
        return result


async def poll(watchers: list[Any], interval: float) -> None:
    """Scan every watcher forever, `interval` seconds apart (cancelled on shutdown)."""
    while True:
        for watcher in watchers:
            try:
                await watcher.scan_once()
            except Exception:  # keep watching whatever one scan did
                logger.exception("watch scan failed")
        await asyncio.sleep(interval)
