"""Downloads and exports are safe to open: RFC 6266 file names for any name, and no cell of
an export is a live spreadsheet formula (SPEC §9.1)."""

from __future__ import annotations

import csv
import io
import re
from typing import Any
from urllib.parse import unquote

import openpyxl
from sqlalchemy.orm import Session

from hostimage.api.downloads import content_disposition
from hostimage.db.models import LogEntry
from tests.api.conftest import World, raw_disk

_OOXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
DISPOSITION = re.compile(r"""^attachment; filename="([ -~]*)"; filename\*=UTF-8''([^\s;"]+)$""")


def _filenames(header: str) -> tuple[str, str]:
    """The ASCII fallback and the decoded ``filename*`` of a Content-Disposition value."""
    m = DISPOSITION.match(header)
    assert m, header
    fallback, encoded = m.groups()
    assert all(c.isascii() for c in encoded)
    return fallback, unquote(encoded, encoding="utf-8", errors="strict")


def test_content_disposition_carries_any_name() -> None:
    for name in ("网站-root.qcow2", 'a"b\\c%d.raw', "café ü.vmdk", "plain.iso", "x;y=z.raw"):
        fallback, exact = _filenames(content_disposition(name))
        assert exact == name
        assert '"' not in fallback and "\\" not in fallback
    assert _filenames(content_disposition("café.raw"))[0] == "cafe.raw"
    assert _filenames(content_disposition("网站-root.qcow2"))[0] == "__-root.qcow2"


def test_a_chinese_named_sub_image_downloads_with_its_name(world: World) -> None:
    hi = world.host_image("p0a", "网站", disks=1)
    sub = hi["sub_images"][0]
    assert sub["name"] == "网站-root"
    r = world.admin.get(f"/images/{sub['id']}/data")
    assert r.status_code == 200, r.text
    assert r.content == raw_disk(0)
    fallback, exact = _filenames(r.headers["content-disposition"])
    assert exact == f"网站-root.{sub['disk_format']}"
    assert fallback.endswith(f"-root.{sub['disk_format']}")
    # a range and a format copy carry the same header
    r = world.admin.get(f"/images/{sub['id']}/data", headers={"Range": "bytes=0-511"})
    assert r.status_code == 206
    assert _filenames(r.headers["content-disposition"])[1] == exact

    r = world.admin.post(f"/host-images/{hi['id']}/formats", {"format": "vmdk"})
    assert r.status_code == 202, r.text
    world.worker.drain()
    r = world.admin.get(f"/images/{sub['id']}/data", params={"format": "vmdk"})
    assert r.status_code == 200, r.text
    assert r.content[:4] == b"KDMV"
    assert _filenames(r.headers["content-disposition"])[1] == "网站-root.vmdk"


# Each would be a formula (or a link, or a DDE call) if a spreadsheet program read it raw.
HOSTILE_NAMES = ['=HYPERLINK("evil.example","x")', "+1", "-2", "@SUM(A1)"]
HOSTILE_CONTROL = ["\tx", "\rx"]


def _hostile_log(world: World, session_factory: Any) -> str:
    """A host image whose log holds entries named with every hostile prefix."""
    hi = world.host_image("p0a", "plain", disks=1)
    for name in HOSTILE_NAMES:
        r = world.admin.patch(f"/host-images/{hi['id']}", {"name": name, "description": name})
        assert r.status_code == 200, r.text
    r = world.admin.patch(f"/host-images/{hi['id']}", {"description": "last"})
    assert r.status_code == 200, r.text
    # Names refuse control characters, so those come in as rows written by hand.
    with session_factory() as s:
        assert isinstance(s, Session)
        for name in HOSTILE_CONTROL:
            s.add(
                LogEntry(
                    obj_type="host_image",
                    obj_id=hi["id"],
                    obj_name=name,
                    root_id=hi["id"],
                    action="update",
                    notes={},
                )
            )
        s.commit()
    return str(hi["id"])


def test_csv_export_neutralises_formulas(world: World) -> None:
    hid = _hostile_log(world, world.client.app.state.session_factory)  # type: ignore[attr-defined]
    r = world.admin.get(
        f"/host-images/{hid}/logs/export",
        params={"format": "csv", "columns": "obj_name,notes", "header": "keys"},
    )
    assert r.status_code == 200, r.text
    _, exact = _filenames(r.headers["content-disposition"])
    assert exact == f"host-image-{hid}-logs.csv"
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
    names = [row[0] for row in rows[1:]]
    for hostile in HOSTILE_NAMES + HOSTILE_CONTROL:
        assert "'" + hostile in names, (hostile, names)
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    # the descriptions (inside the notes) stay exactly as written
    assert any('"=HYPERLINK(\\"evil.example\\",\\"x\\")"' in row[1] for row in rows[1:])


def test_xlsx_export_is_plain_strings(world: World) -> None:
    hid = _hostile_log(world, world.client.app.state.session_factory)  # type: ignore[attr-defined]
    r = world.admin.get(
        f"/host-images/{hid}/logs/export",
        params={"format": "xlsx", "columns": "id,obj_name,notes", "header": "keys"},
    )
    assert r.status_code == 200, r.text
    _, exact = _filenames(r.headers["content-disposition"])
    assert exact == f"host-image-{hid}-logs.xlsx"
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert sheet is not None
    names = []
    for row in sheet.iter_rows(min_row=2):
        ident, name, notes = row
        assert ident.data_type == "n"
        assert name.data_type == "s" and notes.data_type == "s", (name.value, name.data_type)
        assert name.hyperlink is None
        # control characters travel as OOXML escapes (_x000D_), which Excel decodes
        names.append(_OOXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), name.value))
    # stored as the very text, not as formulas (openpyxl reads formulas as type "f")
    for hostile in HOSTILE_NAMES + HOSTILE_CONTROL:
        assert hostile in names, (hostile, names)
    links = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert links is not None and not links._hyperlinks
