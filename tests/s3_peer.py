"""Fixtures for the storage tests: one harness per backend, and an S3-protocol server.

The S3 server is moto's (a dev dependency), started once per test session on a free loopback
port and stopped at the end. Set ``HOSTIMAGE_TEST_S3_ENDPOINT`` (e.g. ``http://127.0.0.1:9000``,
as printed by ``scripts/s3-test-server``) to use a running server instead; then
``HOSTIMAGE_TEST_S3_ACCESS_KEY``, ``HOSTIMAGE_TEST_S3_SECRET_KEY``, ``HOSTIMAGE_TEST_S3_REGION``
and ``HOSTIMAGE_TEST_S3_BUCKET`` may name its credentials, region and a bucket to use (created
if missing). Every test works under its own key prefix, and what a session wrote is removed
at its end.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hostimage.storage.s3 import DEFAULT_PART_SIZE, S3Storage

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

SERVER_START_TIMEOUT = 30.0


@dataclass(frozen=True)
class S3Server:
    """Where the tests' S3 server is and how to sign in; ``run_prefix`` is this session's."""

    endpoint: str
    region: str
    access_key: str
    secret_key: str
    bucket: str
    run_prefix: str

    def storage(self, prefix: str, part_size: int = DEFAULT_PART_SIZE) -> S3Storage:
        """An S3Storage for ``bucket`` under ``run_prefix/prefix``."""
        return S3Storage(
            self.bucket,
            f"{self.run_prefix}/{prefix}",
            endpoint_url=self.endpoint,
            region=self.region,
            access_key=self.access_key,
            secret_key=self.secret_key,
            part_size=part_size,
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        conn.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start moto's S3 server on a free loopback port; returns it once it answers HTTP."""
    for _ in range(3):  # a free port can be taken between the probe and the bind
        port = _free_port()
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            if _answers(port):
                return proc, f"http://127.0.0.1:{port}"
            time.sleep(0.1)
        _stop(proc)
    pytest.fail(f"moto's S3 server did not start; its log:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3-protocol server with an existing bucket: moto on loopback, or the one named by
    ``HOSTIMAGE_TEST_S3_ENDPOINT``."""
    external = os.environ.get("HOSTIMAGE_TEST_S3_ENDPOINT")
    proc: subprocess.Popen[bytes] | None = None
    if external:
        endpoint = external
    else:
        proc, endpoint = _start_moto(tmp_path_factory.mktemp("s3-server") / "server.log")
    server = S3Server(
        endpoint=endpoint,
        region=os.environ.get("HOSTIMAGE_TEST_S3_REGION", "us-east-1"),
        access_key=os.environ.get("HOSTIMAGE_TEST_S3_ACCESS_KEY", "testing"),
        secret_key=os.environ.get("HOSTIMAGE_TEST_S3_SECRET_KEY", "testing"),
        bucket=os.environ.get("HOSTIMAGE_TEST_S3_BUCKET", "hostimage-test"),
        run_prefix=f"run-{uuid.uuid4().hex[:12]}",
    )
    try:
        admin = server.storage("admin")
        admin.ensure_bucket()
        yield server
        _remove_run(admin, server)
    finally:
        if proc is not None:
            _stop(proc)


def _remove_run(admin: S3Storage, server: S3Server) -> None:
    """Delete every object and abort every upload this session left under its prefix."""
    client = admin.client
    prefix = f"{server.run_prefix}/"
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=server.bucket, Prefix=prefix
    ):
        objects: list[ObjectIdentifierTypeDef] = [
            {"Key": obj["Key"]} for obj in page.get("Contents", [])
        ]
        if objects:  # a page holds at most 1000 keys, as many as one call may delete
            client.delete_objects(Bucket=server.bucket, Delete={"Objects": objects})
    uploads = client.list_multipart_uploads(Bucket=server.bucket, Prefix=prefix)
    for upload in uploads.get("Uploads", []):
        client.abort_multipart_upload(
            Bucket=server.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
