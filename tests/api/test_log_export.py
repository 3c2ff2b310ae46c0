"""F10 export: CSV and XLSX, column chooser, labels per language, loaded rows or all."""

from __future__ import annotations

import csv
import io

import openpyxl

from tests.api.conftest import World


def _busy_image(world: World, edits: int) -> str:
    hi = world.host_image("p0a", "logged", disks=2)
    for i in range(edits):
        r = world.admin.patch(f"/host-images/{hi['id']}", {"description": f"edit {i}"})
        assert r.status_code == 200
    return str(hi["id"])


def test_csv_all_matching_rows_with_chosen_columns(world: World) -> None:
    hid = _busy_image(world, 30)
    r = world.admin.get(
        f"/host-images/{hid}/logs/export",
        params={
            "format": "csv",
            "columns": "id,action,success,notes",
            "header": "keys",
            "scope": "all",
        },
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["id", "action", "success", "notes"]
    assert len(rows) - 1 == 31  # 30 updates + create
    ids = [int(row[0]) for row in rows[1:]]
    assert ids == sorted(ids, reverse=True)


def test_csv_loaded_rows_and_labels(world: World) -> None:
    hid = _busy_image(world, 25)
    r = world.admin.get(
        f"/host-images/{hid}/logs/export",
        params={"scope": "loaded", "limit": 20, "columns": "time,action,success", "lang": "zh-CN"},
    )
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["操作时间", "操作类型", "结果"]
    assert len(rows) == 21 and rows[1][2] == "成功"
    r = world.admin.get(
        f"/host-images/{hid}/logs/export",
        params={"scope": "loaded", "limit": 5, "columns": "action", "lang": "en"},
    )
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["Action"] and len(rows) == 6


def test_xlsx_export_filtered_by_time(world: World) -> None:
    hid = _busy_image(world, 3)
    entries = world.admin.get(f"/host-images/{hid}/logs").json()["items"]
    newest = entries[0]["time"]
    r = world.admin.get(
        f"/host-images/{hid}/logs/export",
        params={"format": "xlsx", "columns": "id,time,action,obj_name", "until": newest},
    )
    assert r.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(r.content))
    rows = list(book.active.iter_rows(values_only=True))
    assert rows[0] == ("ID", "操作时间", "操作类型", "资源名称")
    exported = {row[0] for row in rows[1:]}
    assert entries[0]["id"] not in exported  # until is exclusive
    assert len(exported) == len([e for e in entries if e["time"] < newest])


def test_export_refuses_unknown_columns_and_invisible_images(world: World) -> None:
    hid = _busy_image(world, 0)
    r = world.admin.get(f"/host-images/{hid}/logs/export", params={"columns": "id,password"})
    assert r.status_code == 400 and r.json()["code"] == "bad_columns"
    outsider = world.add_user("out", "member", "p1a", domain="D1")
    assert outsider.get(f"/host-images/{hid}/logs/export").status_code == 404
    assert outsider.get("/logs", params={"obj_id": hid}).json()["items"] == []


def test_log_entry_detail(world: World) -> None:
    hid = _busy_image(world, 1)
    entry = world.admin.get(f"/host-images/{hid}/logs").json()["items"][0]
    one = world.admin.get(f"/logs/{entry['id']}").json()
    assert one == entry
    assert one["actor_user_name"] == "admin" and one["owner_project_name"] == "p0a"
    assert one["request_id"]
    outsider = world.add_user("out2", "viewer", "p2a", domain="D2")
    assert outsider.get(f"/logs/{entry['id']}").status_code == 404
