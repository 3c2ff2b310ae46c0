"""``suffixed``: the name ``generate_name`` tries after a collision (SPEC §3)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from hostimage.domain.naming import suffixed

SUFFIX = re.compile(r"-[a-z0-9]{6}")


@given(st.text(max_size=40))
def test_the_name_gets_a_short_suffix(name: str) -> None:
    got = suffixed(name)
    assert got.startswith(name)
    assert SUFFIX.fullmatch(got[len(name) :])


def test_suffixes_are_random() -> None:
    # 36^6 possible suffixes: 200 draws repeat one with a probability of about 1e-5
    names = {suffixed("web") for _ in range(200)}
    assert len(names) >= 199
