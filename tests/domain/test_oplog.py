"""Operation-log vocabulary, export columns and paging markers (SPEC §3, §5, F10), without I/O."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostimage.domain.oplog import (
    LOG_COLUMNS,
    MAX_LOG_LIMIT,
    LogAction,
    ObjType,
    column_label,
    decode_marker,
    encode_marker,
    parse_columns,
)
from hostimage.errors import Invalid

# SPEC §5 "Log entry fields", in that order.
SPEC_FIELDS = [
    "id",
    "time",
    "obj_type",
    "obj_id",
    "obj_name",
    "action",
    "success",
    "notes",
    "actor_user_id",
    "actor_user_name",
    "actor_project_id",
    "actor_project_name",
    "owner_domain_id",
    "owner_domain_name",
    "owner_project_id",
    "owner_project_name",
    "request_id",
    "client_ip",
]

# Log entry ids are a signed 64-bit column (BIGINT on PostgreSQL, INTEGER on SQLite).
MAX_ENTRY_ID = 2**63 - 1


def test_actions_and_object_types_are_the_spec_lists() -> None:
    assert [a.value for a in LogAction] == [
        "create",
        "update",
        "share",
        "unshare",
        "change_project",
        "set_protection",
        "delete",
        "save",
        "convert",
    ]
    assert {o.value for o in ObjType} == {"host_image", "image", "server"}


def test_columns_are_the_log_entry_fields_in_order() -> None:
    assert list(LOG_COLUMNS) == SPEC_FIELDS
    assert MAX_LOG_LIMIT == 1000  # §5: limit 1–1000


@pytest.mark.parametrize("raw", [None, ""])
def test_no_columns_means_all_in_the_default_order(raw: str | None) -> None:
    assert parse_columns(raw) == SPEC_FIELDS


def test_columns_keep_the_asked_order_and_ignore_blanks() -> None:
    assert parse_columns("action,id,time") == ["action", "id", "time"]
    assert parse_columns(" action , id ,, time ") == ["action", "id", "time"]


@pytest.mark.parametrize(
    ("raw", "unknown"),
    [
        ("id,nope", "nope"),
        ("ID", "ID"),  # keys are exact
        ("id,password_hash,time,x", "password_hash, x"),
    ],
)
def test_unknown_columns_are_refused_with_400(raw: str, unknown: str) -> None:
    with pytest.raises(Invalid) as exc:
        parse_columns(raw)
    assert exc.value.status == 400
    assert exc.value.code == "bad_columns"
    assert unknown in exc.value.detail


@given(st.lists(st.sampled_from(SPEC_FIELDS), min_size=1))
def test_any_list_of_known_columns_is_accepted_as_given(keys: list[str]) -> None:
    assert parse_columns(",".join(keys)) == keys


@pytest.mark.parametrize("lang", ["en", "EN", "en-US", "en_GB"])
def test_english_labels(lang: str) -> None:
    assert column_label("time", lang) == "Time"
    assert column_label("owner_project_name", lang) == "Owner project"


@pytest.mark.parametrize("lang", ["zh-CN", "zh", "ZH-cn", "fr"])
def test_chinese_labels_otherwise(lang: str) -> None:
    assert column_label("time", lang) == "操作时间"
    assert column_label("actor_user_name", lang) == "发起人"


def test_labels_are_unique_and_not_blank() -> None:
    zh = [column_label(k, "zh-CN") for k in LOG_COLUMNS]
    en = [column_label(k, "en") for k in LOG_COLUMNS]
    assert len(set(zh)) == len(zh) and len(set(en)) == len(en)
    assert all(label.strip() for label in zh + en)


# --- paging markers ------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=MAX_ENTRY_ID))
def test_marker_round_trip(entry_id: int) -> None:
    marker = encode_marker(entry_id)
    assert decode_marker(marker) == entry_id
    # safe in a query string without escaping
    assert set(marker) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@given(st.integers(min_value=1, max_value=MAX_ENTRY_ID), st.integers(1, MAX_ENTRY_ID))
def test_markers_of_different_entries_differ(a: int, b: int) -> None:
    assert (encode_marker(a) == encode_marker(b)) is (a == b)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "marker",
    [
        "",
        "not a marker",
        "%%%",
        _b64("v2:5"),
        _b64("5"),
        _b64("v1:"),
        _b64("v1:abc"),
        _b64("v1:5.0"),
        base64.urlsafe_b64encode(b"v1:\xff\xfe").decode(),
        "A",  # one base64 character is never a whole byte
    ],
)
def test_anything_else_is_refused_with_400(marker: str) -> None:
    with pytest.raises(Invalid) as exc:
        decode_marker(marker)
    assert exc.value.status == 400
    assert exc.value.code == "bad_marker"


@given(st.text(max_size=40))
def test_any_text_decodes_to_an_id_or_is_refused_with_400(marker: str) -> None:
    try:
        got = decode_marker(marker)
    except Invalid as exc:
        assert exc.code == "bad_marker"
    else:
        assert isinstance(got, int)


# Ids that no log entry can have (beyond the signed 64-bit id column) would fail the paging
# query on SQLite with an OverflowError, a 500 instead of a 400.
@pytest.mark.parametrize("entry_id", [2**63, 2**70, -(2**63) - 1])
def test_a_marker_beyond_the_id_column_is_refused_with_400(entry_id: int) -> None:
    with pytest.raises(Invalid):
        decode_marker(encode_marker(entry_id))
