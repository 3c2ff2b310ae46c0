"""S3-protocol storage (AWS S3, MinIO, Ceph RGW): multipart writes that appear only on publish.

Objects live in one bucket under an optional key prefix (``s3://bucket/prefix``). The bucket
must already exist: the service never creates it on its own. ``S3Storage.ensure_bucket``
creates it for tests and development setups.

A writer buffers one part in memory (16 MiB by default) and uploads each full part as part of
an S3 multipart upload; ``publish`` completes the upload, which makes the whole object appear
under its key in one step. An object smaller than one part is sent with a single PUT at
``publish``. ``abort`` aborts the multipart upload, and so does Python's garbage collector for
a writer dropped unpublished, on a best-effort basis. A process that dies mid-write still
leaves an incomplete upload behind (invisible, but billed as storage): the service's garbage
collector aborts it once no part has arrived for the grace period
(:meth:`S3Storage.incomplete_writes`); a bucket lifecycle rule with
``AbortIncompleteMultipartUpload`` is a second line of defence.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import weakref
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hostimage.storage.base import IncompleteWrite, ObjectInfo, StorageError, check_key

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

DEFAULT_PART_SIZE = 16 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's lower bound for every part but the last
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024  # S3's upper bound for one part
MAX_PARTS = 10_000  # S3's upper bound for parts in one upload
_PARTS_PER_TIER = 1_000  # the part size doubles after each this many parts

_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


_session_lock = threading.Lock()


@functools.cache
def _session() -> boto3.session.Session:
    """One boto3 session per process, so the S3 API model is loaded once (call under the
    lock: sessions are not thread-safe)."""
    return boto3.session.Session()


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _valid(key: str) -> bool:
    try:
        check_key(key)
    except StorageError:
        return False
    return True


def _abort_upload(client: S3Client, bucket: str, key: str, upload_id: str) -> None:
    """Abort one multipart upload; an upload that is already gone counts as aborted."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except ClientError as exc:
        if _error_code(exc) != "NoSuchUpload":
            raise


def _abort_quietly(client: S3Client, bucket: str, key: str, upload_id: str) -> None:
    """Garbage-collector cleanup for an unpublished writer: never raises."""
    with contextlib.suppress(Exception):  # best effort; a lifecycle rule catches the rest
        _abort_upload(client, bucket, key, upload_id)


class S3Writer:
    """A write in progress: nothing is visible under the key until ``publish`` returns."""

    def __init__(
        self, client: S3Client, bucket: str, key: str, object_key: str, part_size: int
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._object_key = object_key
        self._part_size = part_size
        self._buffer = bytearray()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._state = "open"  # open → published | aborted | failed

    def _next_part_size(self) -> int:
        tier = len(self._parts) // _PARTS_PER_TIER
        return min(self._part_size << tier, MAX_PART_SIZE)

    def _require_open(self) -> None:
        if self._state != "open":
            raise StorageError(f"Writer for {self._key!r} is {self._state}")

    def write(self, data: bytes) -> None:
        """Append ``data``; uploads each full part as it fills. Raises StorageError on failure
        (the upload is then aborted and the writer is unusable)."""
        self._require_open()
        self._buffer += data
        self._size += len(data)
        sent = 0
        while len(self._buffer) - sent >= (n := self._next_part_size()):
            with memoryview(self._buffer) as view:
                part = bytes(view[sent : sent + n])
            self._upload_part(part)
            sent += n
        del self._buffer[:sent]

    def _upload_part(self, body: bytes) -> None:
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            self._fail()
            raise StorageError(f"Object {self._key!r} needs more than {MAX_PARTS} parts")
        try:
            if self._upload_id is None:
                created = self._client.create_multipart_upload(
                    Bucket=self._bucket, Key=self._object_key
                )
                self._upload_id = created["UploadId"]
                self._finalizer = weakref.finalize(
                    self,
                    _abort_quietly,
                    self._client,
                    self._bucket,
                    self._object_key,
                    self._upload_id,
                )
                self._finalizer.atexit = False
            resp = self._client.upload_part(
                Bucket=self._bucket,
                Key=self._object_key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            )
        except (BotoCoreError, ClientError) as exc:
            self._fail()
            raise StorageError(f"Uploading part {number} of {self._key!r} failed: {exc}") from exc
        part: CompletedPartTypeDef = {"PartNumber": number, "ETag": resp["ETag"]}
        for field in ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256"):
            if field in resp:
                part[field] = resp[field]
        self._parts.append(part)

    def publish(self) -> ObjectInfo:
        """Make the whole object appear under its key at once (replacing any object there)
        and return its size. Raises StorageError if the writer is not open or S3 refuses; the
        upload is then aborted and nothing new is visible."""
        self._require_open()
        try:
            if self._upload_id is None:
                self._client.put_object(
                    Bucket=self._bucket, Key=self._object_key, Body=bytes(self._buffer)
                )
            else:
                if self._buffer:
                    self._upload_part(bytes(self._buffer))
                self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._object_key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        except (BotoCoreError, ClientError) as exc:
            self._fail()
            raise StorageError(f"Publishing {self._key!r} failed: {exc}") from exc
        self._done("published")
        return ObjectInfo(key=self._key, size=self._size)

    def abort(self) -> None:
        """Drop everything written; leaves no object and no incomplete upload. Idempotent, and
        a no-op after ``publish``. Raises StorageError if S3 refuses to abort the upload."""
        if self._state in ("published", "aborted"):
            return
        upload_id = self._upload_id
        self._done("aborted")
        if upload_id is not None:
            try:
                _abort_upload(self._client, self._bucket, self._object_key, upload_id)
            except (BotoCoreError, ClientError) as exc:
                raise StorageError(f"Aborting the upload of {self._key!r} failed: {exc}") from exc

    def _fail(self) -> None:
        upload_id = self._upload_id
        self._done("failed")
        if upload_id is not None:
            _abort_quietly(self._client, self._bucket, self._object_key, upload_id)

    def _done(self, state: str) -> None:
        self._state = state
        self._buffer = bytearray()
        self._upload_id = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None


class S3Storage:
    """Objects in ``bucket`` under ``prefix`` on an S3-protocol server.

    ``endpoint_url`` names a MinIO / Ceph RGW / other S3-compatible server (path-style
    addressing is used then); ``None`` means AWS S3. ``region``, ``access_key`` and
    ``secret_key`` left as ``None`` fall back to boto3's usual sources (environment, config
    files, instance roles). The bucket must exist (see ``ensure_bucket``).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        if not bucket:
            raise StorageError("S3 storage needs a bucket name")
        prefix = prefix.strip("/")
        if prefix:
            check_key(prefix)
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise StorageError(f"Part size must be between 5 MiB and 5 GiB, got {part_size}")
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        self._base = f"{prefix}/" if prefix else ""
        config = Config(
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            retries={"max_attempts": 5, "mode": "standard"},
            signature_version="s3v4",
        )
        with _session_lock:
            self.client: S3Client = _session().client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                config=config,
            )

    def _object_key(self, key: str) -> str:
        check_key(key)
        return self._base + key

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (for tests and development setups)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise StorageError(f"Bucket {self.bucket!r} is not usable: {exc}") from exc
        region = self.client.meta.region_name
        try:
            if region and region != "us-east-1":
                self.client.create_bucket(
                    Bucket=self.bucket,
                    CreateBucketConfiguration={
                        "LocationConstraint": cast("BucketLocationConstraintType", region)
                    },
                )
            else:
                self.client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StorageError(f"Creating bucket {self.bucket!r} failed: {exc}") from exc

    def open_writer(self, key: str) -> S3Writer:
        """A writer for ``key``; nothing is sent until the first full part or ``publish``."""
        return S3Writer(self.client, self.bucket, key, self._object_key(key), self.part_size)

    def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        """Bytes ``[start, end)`` of the object (``end=None``: to its end; a range past the end
        is cut short) in chunks of at most ``chunk_size``, streamed from one ranged GET.
        Raises StorageError at once if the object does not exist."""
        object_key = self._object_key(key)
        if start < 0 or (end is not None and end < 0) or chunk_size < 1:
            raise StorageError(f"Invalid read of {key!r}: start={start} end={end}")
        if end is not None and end <= start:
            if self.stat(key) is None:
                raise StorageError(f"No such object: {key}")
            return iter(())
        try:
            if start == 0 and end is None:
                resp = self.client.get_object(Bucket=self.bucket, Key=object_key)
            else:
                last = "" if end is None else str(end - 1)
                resp = self.client.get_object(
                    Bucket=self.bucket, Key=object_key, Range=f"bytes={start}-{last}"
                )
        except ClientError as exc:
            code = _error_code(exc)
            if code in _MISSING:
                raise StorageError(f"No such object: {key}") from exc
            if code == "InvalidRange":  # the object exists but starts before ``start``
                return iter(())
            raise StorageError(f"Reading {key!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"Reading {key!r} failed: {exc}") from exc
        body = resp["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                for chunk in body.iter_chunks(chunk_size):
                    if chunk:
                        yield chunk
            except (BotoCoreError, ClientError) as exc:
                raise StorageError(f"Reading {key!r} failed: {exc}") from exc
            finally:
                body.close()

        return chunks()

    def stat(self, key: str) -> ObjectInfo | None:
        """Size of the published object at ``key``, or None if there is none (a missing
        bucket also reads as None: S3 answers HEAD with a bare 404 either way)."""
        object_key = self._object_key(key)
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=object_key)
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                return None
            raise StorageError(f"Stat of {key!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"Stat of {key!r} failed: {exc}") from exc
        return ObjectInfo(key=key, size=resp["ContentLength"], modified=resp["LastModified"])

    def delete(self, key: str) -> None:
        """Remove the object at ``key``; deleting a missing object is not an error."""
        object_key = self._object_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=object_key)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"Deleting {key!r} failed: {exc}") from exc

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keys of published objects starting with ``prefix``, in S3's (byte) order."""
        return (info.key for info in self.list_objects(prefix))

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in S3's (byte) order, one page of
        ``list_objects_v2`` at a time. Names under the storage prefix that are not valid keys
        were not written by this service and are skipped."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._base + prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self._base) :]
                    if _valid(key):
                        yield ObjectInfo(key=key, size=obj["Size"], modified=obj["LastModified"])
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"Listing objects under {prefix!r} failed: {exc}") from exc

    def incomplete_writes(self, older_than: datetime) -> Iterator[IncompleteWrite]:
        """Multipart uploads under the storage prefix that were started, and got their last
        part, before ``older_than`` (an upload's ``Initiated`` time never changes, so the
        parts of an upload started earlier are listed to see that it is not still running).
        ``ref`` is the upload id."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._base):
                for upload in page.get("Uploads", []):
                    key = upload["Key"][len(self._base) :]
                    if not _valid(key) or upload["Initiated"] >= older_than:
                        continue
                    found = self._upload_progress(upload["Key"], upload["UploadId"])
                    if found is None:
                        continue  # completed or aborted meanwhile
                    size, last_part = found
                    modified = max(upload["Initiated"], last_part or upload["Initiated"])
                    if modified < older_than:
                        yield IncompleteWrite(
                            ref=upload["UploadId"], key=key, size=size, modified=modified
                        )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"Listing incomplete uploads failed: {exc}") from exc

    def _upload_progress(
        self, object_key: str, upload_id: str
    ) -> tuple[int, datetime | None] | None:
        """Bytes received by an upload and when its latest part arrived; None if it is gone."""
        size = 0
        last: datetime | None = None
        paginator = self.client.get_paginator("list_parts")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Key=object_key, UploadId=upload_id):
                for part in page.get("Parts", []):
                    size += part["Size"]
                    if last is None or part["LastModified"] > last:
                        last = part["LastModified"]
        except ClientError as exc:
            if _error_code(exc) == "NoSuchUpload":
                return None
            raise
        return size, last

    def discard_incomplete(self, write: IncompleteWrite) -> None:
        """Abort the multipart upload ``write.ref`` of ``write.key``."""
        if write.key is None:
            raise StorageError(f"Not an incomplete upload of this storage: {write.ref!r}")
        object_key = self._object_key(write.key)
        try:
            _abort_upload(self.client, self.bucket, object_key, write.ref)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"Aborting the upload of {write.key!r} failed: {exc}") from exc
