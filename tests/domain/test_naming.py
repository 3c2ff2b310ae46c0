"""Sub-image names (F3): the two-part form a database applies is the same rule."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hostimage.domain.naming import sub_image_name, sub_image_name_parts


def test_system_and_data_disk_names() -> None:
    assert sub_image_name("web", 0) == "web-root"
    assert sub_image_name("web", 1) == "web-data-1"
    assert sub_image_name("web", 12) == "web-data-12"


@given(st.text(min_size=1, max_size=40), st.integers(min_value=0, max_value=64))
def test_parts_give_the_same_names(name: str, index: int) -> None:
    root, data_prefix = sub_image_name_parts(name)
    assert sub_image_name(name, index) == (root if index == 0 else f"{data_prefix}{index}")
