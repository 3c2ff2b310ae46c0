"""open_storage: which backend a storage URL names, and the S3 options it passes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostimage.storage import StorageError, open_storage
from hostimage.storage.local import LocalStorage
from hostimage.storage.s3 import S3Storage
from tests.storage.conftest import S3Server


def test_file_url_is_local(tmp_path: Path) -> None:
    storage = open_storage(f"file://{tmp_path}/objects")
    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "objects").resolve()


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://images", "images", ""),
        ("s3://images/", "images", ""),
        ("s3://images/host/prod", "images", "host/prod"),
        ("s3://images/host/prod/", "images", "host/prod"),
    ],
)
def test_s3_url_names_bucket_and_prefix(url: str, bucket: str, prefix: str) -> None:
    storage = open_storage(url, endpoint_url="http://127.0.0.1:9", region="eu-west-1")
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix) == (bucket, prefix)
    assert storage.client.meta.endpoint_url == "http://127.0.0.1:9"
    assert storage.client.meta.region_name == "eu-west-1"


@pytest.mark.parametrize(
    "url",
    [
        "s3://",
        "s3:///prefix",
        "s3://key:secret@bucket/prefix",
        "s3://bucket:9000/prefix",
        "s3://bucket/prefix?versionId=1",
        "s3://bucket/../up",
        "gs://bucket/prefix",
        "memory://",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(StorageError):
        open_storage(url)


def test_s3_url_round_trip(s3_server: S3Server) -> None:
    storage = open_storage(
        f"s3://{s3_server.bucket}/{s3_server.run_prefix}/via-url",
        endpoint_url=s3_server.endpoint,
        region=s3_server.region,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
    )
    writer = storage.open_writer("x/y")
    writer.write(b"hello")
    writer.publish()
    assert b"".join(storage.read("x/y", 1, 4)) == b"ell"
    assert list(storage.keys()) == ["x/y"]
