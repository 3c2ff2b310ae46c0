"""Guest identity rules: what a VM request accepts, the identity writer accepts too."""

from __future__ import annotations

import base64
import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostimage.domain import identity
from hostimage.imaging import guestfs
from hostimage.imaging.passwords import sha512_crypt


def ssh_key(kind: str = "ssh-ed25519", comment: str = "me@host", body: bytes | None = None) -> str:
    """A structurally valid OpenSSH public key line of ``kind``."""
    blob = struct.pack(">I", len(kind)) + kind.encode()
    blob += struct.pack(">I", 32) + (body if body is not None else os.urandom(32))
    line = f"{kind} {base64.b64encode(blob).decode()}"
    return f"{line} {comment}" if comment else line


def _writer_accepts(
    hostname: str = "host",
    user: str = "root",
    password_hash: str | None = None,
    key: str | None = None,
) -> bool:
    try:
        guestfs._validate(hostname, "0" * 32, user, password_hash, key)
    except guestfs.IdentityError:
        return False
    return True


def test_hostnames() -> None:
    for good in ("a", "web-1", "a.b.example", "x" * 63, ".".join(["a" * 63] * 3) + ".abc"):
        assert identity.valid_hostname(good), good
    too_long = ".".join(["a" * 63] * 4)
    for bad in ("", "-a", "a-", "a..b", "a_b", "x" * 64, too_long, "a\n", "中文", "a b", "a."):
        assert not identity.valid_hostname(bad), bad


def test_login_users_and_passwords() -> None:
    for good in ("root", "_svc", "deploy.user", "a-b_c", "x" * 32):
        assert identity.valid_login_user(good), good
    for bad in ("", "Root", "1abc", "x" * 33, "a b", "a\n", "a:b"):
        assert not identity.valid_login_user(bad), bad
    assert identity.valid_guest_password("correct horse battery")
    for bad in ("a\nb", "a\rb", "a\x00b"):
        assert not identity.valid_guest_password(bad)


def test_ssh_keys() -> None:
    for kind in identity.SSH_KEY_TYPES:
        assert identity.valid_ssh_public_key(ssh_key(kind)), kind
    assert identity.valid_ssh_public_key("  " + ssh_key(comment="") + "\n")
    good = ssh_key()
    bad = [
        "",
        "ssh-rsa",
        "ssh-ed25519 AAAA",  # too short to hold a key
        "ssh-ed25519 !!notbase64!!",
        ssh_key("ssh-rsa").replace("ssh-rsa", "ssh-ed25519", 1),  # names another type
        good + "\nssh-ed25519 " + good.split(" ")[1],  # two lines
        good.replace(" me@host", " me\x00host"),
        "ecdsa-sha2-nistp999 " + good.split(" ")[1],
        "ssh-ed25519  " + good.split(" ")[1],
    ]
    for key in bad:
        assert not identity.valid_ssh_public_key(key), repr(key)


def test_sha512_crypt() -> None:
    assert identity.valid_sha512_crypt(sha512_crypt("a password"))
    assert not identity.valid_sha512_crypt("$1$abc$def")
    assert not identity.valid_sha512_crypt(sha512_crypt("x") + "\n")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Web Server 1", "web-server-1"),
        ("db.internal", "db.internal"),
        ("网站 服务器", "server"),
        ("--x--", "x"),
        ("café", "caf"),
        ("a" * 100, "a" * 63),
    ],
)
def test_hostname_from_a_display_name(name: str, expected: str) -> None:
    assert identity.hostname_from(name) == expected


@given(st.text(max_size=300))
def test_a_made_hostname_is_always_valid(name: str) -> None:
    assert identity.valid_hostname(identity.hostname_from(name))


@given(st.one_of(st.from_regex(identity.HOSTNAME_PATTERN), st.text(max_size=80)))
def test_the_writer_accepts_every_hostname_the_request_accepts(name: str) -> None:
    if identity.valid_hostname(name):
        assert _writer_accepts(hostname=name)


@given(st.one_of(st.from_regex(identity.LOGIN_USER_PATTERN), st.text(max_size=40)))
def test_the_writer_accepts_every_login_user_the_request_accepts(user: str) -> None:
    if identity.valid_login_user(user):
        assert _writer_accepts(user=user)


@given(
    st.sampled_from(identity.SSH_KEY_TYPES),
    st.text(alphabet=st.characters(blacklist_characters="\r\n\x00"), max_size=30),
    st.binary(min_size=1, max_size=64),
)
def test_the_writer_accepts_every_ssh_key_the_request_accepts(
    kind: str, comment: str, body: bytes
) -> None:
    key = ssh_key(kind, comment.strip(), body)
    if identity.valid_ssh_public_key(key):
        assert _writer_accepts(key=key)
