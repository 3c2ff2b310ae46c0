"""What the S3 backend promises beyond the shared contract: where objects land in the bucket,
how writes are cut into parts, cleanup of unfinished uploads, errors as StorageError."""

from __future__ import annotations

import gc
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from hostimage.storage.base import StorageError
from hostimage.storage.s3 import MAX_PART_SIZE, MIN_PART_SIZE, S3Storage, S3Writer
from tests.storage.conftest import S3Server, incomplete_uploads

MIB = 1024 * 1024


@pytest.fixture()
def s3(s3_server: S3Server) -> S3Storage:
    """An empty S3Storage with the smallest part size S3 allows (5 MiB)."""
    return s3_server.storage(uuid.uuid4().hex[:12], part_size=MIN_PART_SIZE)


def _raw_keys(s3: S3Storage) -> list[str]:
    resp = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=f"{s3.prefix}/")
    return [o["Key"] for o in resp.get("Contents", [])]


def test_objects_live_under_the_prefix(s3: S3Storage) -> None:
    writer = s3.open_writer("images/a.raw")
    writer.write(b"abc")
    writer.publish()
    assert _raw_keys(s3) == [f"{s3.prefix}/images/a.raw"]
    assert list(s3.keys()) == ["images/a.raw"]


def test_small_object_is_one_put(s3: S3Storage) -> None:
    writer = s3.open_writer("small")
    writer.write(b"x" * (MIN_PART_SIZE - 1))
    assert incomplete_uploads(s3) == []  # nothing sent before publish
    writer.publish()
    etag = s3.client.head_object(Bucket=s3.bucket, Key=f"{s3.prefix}/small")["ETag"]
    assert "-" not in etag


def test_large_object_is_uploaded_in_parts_as_they_fill(s3: S3Storage) -> None:
    object_key = f"{s3.prefix}/large"
    writer = s3.open_writer("large")
    for _ in range(11):
        writer.write(b"z" * MIB)
    [upload] = s3.client.list_multipart_uploads(Bucket=s3.bucket, Prefix=object_key)["Uploads"]
    parts = s3.client.list_parts(Bucket=s3.bucket, Key=object_key, UploadId=upload["UploadId"])
    assert [p["Size"] for p in parts["Parts"]] == [MIN_PART_SIZE, MIN_PART_SIZE]
    assert s3.stat("large") is None
    info = writer.publish()
    assert info.size == 11 * MIB
    assert s3.client.head_object(Bucket=s3.bucket, Key=object_key)["ETag"].endswith('-3"')
    assert incomplete_uploads(s3) == []


def test_dropped_writer_aborts_its_upload(s3: S3Storage) -> None:
    writer = s3.open_writer("dropped")
    writer.write(b"d" * (MIN_PART_SIZE + 1))
    assert incomplete_uploads(s3) == [f"{s3.prefix}/dropped"]
    del writer
    gc.collect()
    assert incomplete_uploads(s3) == []
    assert s3.stat("dropped") is None


def test_finished_writer_refuses_more(s3: S3Storage) -> None:
    published = s3.open_writer("done")
    published.write(b"1")
    published.publish()
    with pytest.raises(StorageError):
        published.write(b"2")
    with pytest.raises(StorageError):
        published.publish()
    aborted = s3.open_writer("gone")
    aborted.abort()
    with pytest.raises(StorageError):
        aborted.write(b"2")
    with pytest.raises(StorageError):
        aborted.publish()
    assert s3.stat("gone") is None


def test_missing_bucket_gives_storage_errors(s3_server: S3Server) -> None:
    missing = S3Storage(
        f"hostimage-missing-{uuid.uuid4().hex[:12]}",
        "p",
        endpoint_url=s3_server.endpoint,
        region=s3_server.region,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        part_size=MIN_PART_SIZE,
    )
    # stat cannot tell: a HEAD request's 404 has no body saying what is missing
    assert missing.stat("k") is None
    with pytest.raises(StorageError):
        missing.read("k")
    with pytest.raises(StorageError):
        list(missing.keys())
    with pytest.raises(StorageError):
        missing.delete("k")
    small = missing.open_writer("k")
    small.write(b"tiny")
    with pytest.raises(StorageError):
        small.publish()
    big = missing.open_writer("k")
    with pytest.raises(StorageError):
        big.write(b"b" * MIN_PART_SIZE)
    big.abort()


def test_ensure_bucket_creates_once(s3_server: S3Server) -> None:
    bucket = f"hostimage-new-{uuid.uuid4().hex[:12]}"
    storage = S3Storage(
        bucket,
        endpoint_url=s3_server.endpoint,
        region=s3_server.region,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
    )
    with pytest.raises(StorageError):
        list(storage.keys())
    storage.ensure_bucket()
    storage.ensure_bucket()
    assert storage.stat("k") is None
    storage.client.delete_bucket(Bucket=bucket)


@pytest.mark.parametrize(
    ("bucket", "prefix", "part_size"),
    [
        ("", "", MIN_PART_SIZE),
        ("b-b-b", "../x", MIN_PART_SIZE),
        ("b-b-b", "a/../b", MIN_PART_SIZE),
        ("b-b-b", "", MIN_PART_SIZE - 1),
        ("b-b-b", "", MAX_PART_SIZE + 1),
    ],
)
def test_bad_configuration_is_refused(bucket: str, prefix: str, part_size: int) -> None:
    with pytest.raises(StorageError):
        S3Storage(bucket, prefix, endpoint_url="http://127.0.0.1:9", part_size=part_size)


def test_part_size_grows_so_large_objects_fit() -> None:
    writer = S3Writer(cast(Any, None), "b", "k", "k", 16 * MIB)
    assert writer._next_part_size() == 16 * MIB
    writer._parts = [{"PartNumber": n, "ETag": ""} for n in range(1, 1001)]
    assert writer._next_part_size() == 32 * MIB
    writer._parts = [{"PartNumber": n, "ETag": ""} for n in range(1, 9001)]
    assert writer._next_part_size() == MAX_PART_SIZE


def test_listing_goes_past_one_page(s3: S3Storage) -> None:
    keys = {f"many/{i:04d}" for i in range(1003)}  # S3 pages hold 1000 keys
    for key in keys:
        s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}/{key}", Body=b"")
    listed = [info.key for info in s3.list_objects("many/")]
    assert listed == sorted(keys)


def test_listing_skips_names_that_are_not_keys(s3: S3Storage) -> None:
    for name in ("ok/key", "with space", "ok/../up", ".hidden"):
        s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}/{name}", Body=b"x")
    assert [info.key for info in s3.list_objects()] == ["ok/key"]


def test_an_upload_that_still_gets_parts_is_not_stale(s3: S3Storage) -> None:
    writer = s3.open_writer("busy")
    writer.write(b"p" * (MIN_PART_SIZE + 1))
    [upload] = s3.client.list_multipart_uploads(Bucket=s3.bucket, Prefix=f"{s3.prefix}/")["Uploads"]
    cutoff = datetime.now(UTC) - timedelta(minutes=1)
    # an upload's Initiated time never moves (the test server even reports a fixed one from
    # years ago): what counts is when its latest part arrived
    assert list(s3.incomplete_writes(cutoff)) == []
    if upload["Initiated"] < cutoff:
        assert list(s3.incomplete_writes(datetime.now(UTC) + timedelta(minutes=1)))
    writer.publish()
    assert s3.stat("busy") is not None


def test_an_upload_without_parts_is_listed_and_aborted(s3: S3Storage) -> None:
    s3.client.create_multipart_upload(Bucket=s3.bucket, Key=f"{s3.prefix}/empty-upload")
    [found] = list(s3.incomplete_writes(datetime.now(UTC) + timedelta(minutes=1)))
    assert (found.key, found.size) == ("empty-upload", 0)
    s3.discard_incomplete(found)
    assert incomplete_uploads(s3) == []
    s3.discard_incomplete(found)  # already gone


def test_incomplete_writes_stay_within_the_prefix(s3_server: S3Server, s3: S3Storage) -> None:
    other = s3_server.storage(uuid.uuid4().hex[:12], part_size=MIN_PART_SIZE)
    theirs = other.open_writer("theirs")
    theirs.write(b"t" * (MIN_PART_SIZE + 1))
    assert list(s3.incomplete_writes(datetime.now(UTC) + timedelta(minutes=1))) == []
    theirs.abort()
