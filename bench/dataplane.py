"""Data-plane benchmarks, each printed as a ratio to a baseline measured in the same run.

* upload 1 GiB and 4 GiB through ``PUT /images/{id}/data`` vs a plain Python copy + SHA-256
  + fsync of the same file (target ≥ 0.8×), with the server's peak RSS (target ≤ 200 MB);
* download 1 GiB through ``GET /images/{id}/data`` vs ``cp``;
* save a 3-disk VM (≈ 1 GiB of written data) through ``POST /servers/{id}/save-host-image``
  vs the hand pipeline an admin would run: ``qemu-img convert -c -O qcow2`` + ``sha256sum``
  per disk, one after the other (target ≤ 0.6× its time).

    uv run python bench/dataplane.py [--sizes 1,4] [--skip-save] [--dir DIR]

The server runs as ``hostimage serve`` on SQLite + local files in a scratch directory.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.imaging.diskfactory import (  # noqa: E402
    TEMPLATE_FILES,
    make_ext4,
    make_partitioned_disk,
    write_template_tree,
)

MiB = 1 << 20
GiB = 1 << 30
CHUNK = 4 * MiB
PASSWORD = "bench-admin-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_file(path: Path, size: int, compressible: float = 0.5) -> Path:
    """Mixed content: ``compressible`` of each 4 MiB block is text-like, the rest random."""
    block_text = b"hostimage benchmark line of fairly compressible text 0123456789\n" * 70000
    with path.open("wb") as fh:
        written = 0
        while written < size:
            n = min(CHUNK, size - written)
            text = int(n * compressible)
            fh.write(block_text[:text] + os.urandom(n - text))
            written += n
    return path


def baseline_copy(src: Path, dst: Path) -> float:
    """Seconds for a Python copy + SHA-256 + fsync of ``src``."""
    os.sync()
    start = time.perf_counter()
    digest = hashlib.sha256()
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    elapsed = time.perf_counter() - start
    dst.unlink()
    return elapsed


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "HOSTIMAGE_ADMIN_PASSWORD": PASSWORD,
            "HOSTIMAGE_ARGON2_TIME_COST": "1",
            "HOSTIMAGE_ARGON2_MEMORY_KIB": "1024",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hostimage.main",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(data_dir),
                "--workers",
                "1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        token = httpx.post(
            f"{self.url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
        ).json()["token"]
        self.client = httpx.Client(
            base_url=f"{self.url}/api/v1",
            timeout=3600,
            headers={"Authorization": f"Bearer {token}"},
        )

    def api_pid(self) -> int:
        return self.proc.pid

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the API process (VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def wait_task(self, task_id: str) -> dict[str, object]:
        while True:
            task: dict[str, object] = self.client.get(f"/tasks/{task_id}").json()
            if task["status"] in ("succeeded", "failed"):
                return task
            time.sleep(0.2)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def upload(server: Server, path: Path, fmt: str = "raw") -> tuple[str, float]:
    image = server.client.post("/images", json={"name": path.name, "disk_format": fmt}).json()
    os.sync()
    start = time.perf_counter()
    r = server.client.put(
        f"/images/{image['id']}/data",
        content=_chunks(path),
        headers={"Content-Type": "application/octet-stream"},
    )
    elapsed = time.perf_counter() - start
    r.raise_for_status()
    return image["id"], elapsed


def download(server: Server, image_id: str, dest: Path) -> float:
    os.sync()
    start = time.perf_counter()
    with server.client.stream("GET", f"/images/{image_id}/data") as r, dest.open("wb") as fh:
        for chunk in r.iter_bytes(CHUNK):
            fh.write(chunk)
    return time.perf_counter() - start


def build_vm_disks(work: Path) -> list[Path]:
    """A partitioned Linux system disk with ~300 MiB of data and two ~350 MiB data disks."""
    tree = write_template_tree(work / "root-tree")
    for name in TEMPLATE_FILES:
        if "\n" in name:  # the test template's deliberately hostile name; no real VM has it
            (tree / name.lstrip("/")).unlink()
    make_file(tree / "srv" / "data" / "bulk.bin", 300 * MiB)
    root = make_ext4(work / "root.ext4", 420 * MiB, tree)
    boot = make_ext4(work / "boot.ext4", 8 * MiB)
    system = make_partitioned_disk(work / "system.raw", [boot, root])
    shutil.rmtree(tree)
    root.unlink()
    boot.unlink()
    d1 = make_file(work / "data1.raw", 350 * MiB, 0.7)
    d2 = make_file(work / "data2.raw", 350 * MiB, 0.3)
    return [system, d1, d2]


def hand_pipeline(disks: list[Path], work: Path) -> float:
    os.sync()
    start = time.perf_counter()
    for disk in disks:
        out = work / f"{disk.stem}.hand.qcow2"
        subprocess.run(
            ["qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", str(disk), str(out)],
            check=True,
        )
        subprocess.run(["sha256sum", str(out)], check=True, stdout=subprocess.DEVNULL)
        out.unlink()
    return time.perf_counter() - start


def row(name: str, ours: float, base: float, base_name: str, extra: str = "") -> None:
    ratio = ours / base
    print(f"{name:<34} {ours:>9.2f} s {base:>9.2f} s  ({base_name})  ratio {ratio:5.2f}  {extra}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,4", help="upload sizes in GiB")
    parser.add_argument("--skip-save", action="store_true")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hostimage-bench-", dir=args.dir))
    server = Server(work / "server")
    try:
        print(f"{'workload':<34} {'ours':>11} {'baseline':>11}")
        for gib in [int(s) for s in args.sizes.split(",") if s]:
            src = make_file(work / f"upload-{gib}g.raw", gib * GiB)
            base = baseline_copy(src, work / "copy.raw")
            image_id, ours = upload(server, src)
            mibs, base_mibs = gib * 1024 / ours, gib * 1024 / base
            row(
                f"upload {gib} GiB ({mibs:.0f} MiB/s)",
                ours,
                base,
                f"py copy+sha256+fsync {base_mibs:.0f} MiB/s",
                f"throughput ratio {mibs / base_mibs:.2f} (target >= 0.8); "
                f"server peak RSS {server.peak_rss_mb():.0f} MB (target <= 200)",
            )
            if gib == 1:
                os.sync()
                start = time.perf_counter()
                subprocess.run(["cp", str(src), str(work / "cp.raw")], check=True)
                cp = time.perf_counter() - start
                (work / "cp.raw").unlink()
                ours_dl = download(server, image_id, work / "dl.raw")
                (work / "dl.raw").unlink()
                row("download 1 GiB", ours_dl, cp, "cp")
            src.unlink()
        if not args.skip_save:
            disks = build_vm_disks(work / "vm")
            written = sum(d.stat().st_size for d in disks) / MiB
            hand = hand_pipeline(disks, work)
            ids = [upload(server, d)[0] for d in disks]
            r = server.client.post(
                "/servers", json={"name": "bench-vm", "disks": [{"image_id": i} for i in ids]}
            )
            server.wait_task(r.json()["task_id"])
            start = time.perf_counter()
            r = server.client.post(
                f"/servers/{r.json()['id']}/save-host-image", json={"name": "bench-save"}
            )
            task = server.wait_task(r.json()["task_id"])
            ours = time.perf_counter() - start
            assert task["status"] == "succeeded", task
            row(
                f"save 3-disk VM ({written:.0f} MiB)",
                ours,
                hand,
                "convert -c + sha256sum per disk",
                "(target <= 0.6; identity cleaned on the system disk)",
            )
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
