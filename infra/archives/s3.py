"""Backups in an S3-compatible bucket through boto3: uploaded in parts as the archive
streams in (a few parts in memory at most), read back in chunks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from infra.archives.store import (
    CHUNK_BYTES,
    ArchiveMissing,
    ChunkReader,
    Hashing,
    StoredArchive,
    StoreFailed,
)
from shared.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Parts of 8 MiB, two in flight: what an upload holds in memory is bounded, whatever
# the archive's size (up to S3's 10,000 parts: 80 GiB per archive).
PART_BYTES = 8 * 1024 * 1024
TRANSFER = TransferConfig(
    multipart_threshold=PART_BYTES,
    multipart_chunksize=PART_BYTES,
    max_concurrency=2,
    use_threads=True,
)


class S3Store:
    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        if not settings.backup_s3_bucket:
            raise ValueError("CORRAL_BACKUP_STORE=s3 needs CORRAL_BACKUP_S3_BUCKET")
        options: dict[str, Any] = {
            "region_name": settings.backup_s3_region or settings.aws_region,
            "endpoint_url": settings.backup_s3_endpoint,
            "config": Config(retries={"max_attempts": 5, "mode": "standard"}),
        }
        if settings.backup_s3_access_key_id:
            options["aws_access_key_id"] = settings.backup_s3_access_key_id
            options["aws_secret_access_key"] = settings.backup_s3_secret_access_key
        client: S3Client = boto3.client("s3", **options)
        return cls(client, settings.backup_s3_bucket, settings.backup_s3_prefix)

    def put(self, key: str, chunks: Iterable[bytes]) -> StoredArchive:
        hashing = Hashing(chunks)
        reader = cast("IO[bytes]", ChunkReader(hashing))
        with self._failing_as_store(f"upload {key}"):
            self._client.upload_fileobj(reader, self._bucket, self._prefix + key, Config=TRANSFER)
        return hashing.stored()

    def read(self, key: str) -> Iterator[bytes]:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self._prefix + key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise ArchiveMissing(key) from None
            raise StoreFailed(f"bucket {self._bucket}: get {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreFailed(f"bucket {self._bucket}: get {key}: {exc}") from exc
        return self._chunks(key, response["Body"])

    def delete(self, key: str) -> None:
        with self._failing_as_store(f"delete {key}"):
            self._client.delete_object(Bucket=self._bucket, Key=self._prefix + key)

    def _chunks(self, key: str, body: Any) -> Iterator[bytes]:
        try:
            with self._failing_as_store(f"read {key}"):
                yield from body.iter_chunks(CHUNK_BYTES)
        finally:
            body.close()

    @contextmanager
    def _failing_as_store(self, action: str) -> Iterator[None]:
        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise StoreFailed(f"bucket {self._bucket}: {action}: {exc}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
