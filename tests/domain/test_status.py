"""The transition tables (SPEC §9.1), checked against the lifecycle each kind is promised:
the expected edges are written here from the spec's words, not read from the tables."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostimage.domain.status import (
    FORMAT_COPY,
    HOST_IMAGE,
    IMAGE,
    SERVER,
    TASK,
    CopyStatus,
    IllegalTransition,
    ImageStatus,
    Machine,
    ServerStatus,
    TaskStatus,
    delete_refusal,
    derive_host_status,
)

# Every change each kind may make, and nothing else.
ALLOWED: dict[str, set[tuple[str, str]]] = {
    "image": {
        ("queued", "saving"),  # an upload or a save starts
        ("queued", "killed"),  # a save given up before it began
        ("queued", "deleting"),
        ("saving", "active"),
        ("saving", "killed"),  # the upload or save failed
        ("saving", "deleting"),
        ("active", "deleting"),
        ("active", "killed"),  # a sub-image saved before its host image's save failed
        ("killed", "saving"),  # a failed upload is made again
        ("killed", "deleting"),
    },
    "host image": {
        ("queued", "saving"),
        ("queued", "active"),
        ("queued", "killed"),
        ("queued", "deleting"),
        ("saving", "active"),
        ("saving", "killed"),
        ("saving", "deleting"),
        ("active", "deleting"),
        ("killed", "deleting"),  # killed: deleted, never resurrected
    },
    "server": {
        ("creating", "ready"),
        ("creating", "running"),  # created and started at once (start: true)
        ("creating", "failed"),
        ("ready", "running"),
        ("ready", "saving"),
        ("ready", "missing"),  # its domain is gone from its host
        ("running", "ready"),
        ("running", "missing"),
        ("missing", "ready"),  # the domain defined again under the same UUID
        ("missing", "running"),
        ("saving", "ready"),
        ("saving", "running"),  # auto_start
    },
    "task": {
        ("queued", "running"),
        ("queued", "failed"),
        ("running", "succeeded"),
        ("running", "failed"),
        ("running", "queued"),  # retried, or its worker stopped
    },
    "format copy": {
        ("queued", "converting"),
        ("queued", "failed"),
        ("converting", "active"),
        ("converting", "failed"),
        ("converting", "queued"),
        ("failed", "queued"),  # asked for again
    },
}
MACHINES: list[Machine] = [IMAGE, HOST_IMAGE, SERVER, TASK, FORMAT_COPY]  # type: ignore[type-arg]


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.kind)
def test_every_pair_is_allowed_exactly_as_the_lifecycle_says(machine: Machine) -> None:  # type: ignore[type-arg]
    statuses = [s.value for s in machine.enum]
    for old, new in itertools.product(statuses, statuses):
        expected = old == new or (old, new) in ALLOWED[machine.kind]
        assert machine.can(old, new) is expected, (machine.kind, old, new)
        if expected:
            machine.check(old, new)
        else:
            with pytest.raises(IllegalTransition, match=machine.kind):
                machine.check(old, new)


def test_terminal_statuses() -> None:
    assert IMAGE.terminal() == {ImageStatus.DELETING}
    assert HOST_IMAGE.terminal() == {ImageStatus.DELETING}
    assert SERVER.terminal() == {ServerStatus.FAILED}
    assert TASK.terminal() == {TaskStatus.SUCCEEDED, TaskStatus.FAILED}
    assert FORMAT_COPY.terminal() == {CopyStatus.ACTIVE}


def test_sources_are_what_may_reach_a_status() -> None:
    assert IMAGE.sources("active") == {ImageStatus.SAVING, ImageStatus.ACTIVE}
    assert TASK.sources("queued") == {TaskStatus.RUNNING, TaskStatus.QUEUED}
    assert HOST_IMAGE.sources("deleting") == {
        ImageStatus.QUEUED,
        ImageStatus.SAVING,
        ImageStatus.ACTIVE,
        ImageStatus.KILLED,
        ImageStatus.DELETING,
    }


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.kind)
def test_unknown_statuses_are_bugs(machine: Machine) -> None:  # type: ignore[type-arg]
    first = next(iter(machine.enum)).value
    with pytest.raises(IllegalTransition):
        machine.check(first, "resurrected")
    with pytest.raises(IllegalTransition):
        machine.check("", first)


def test_a_table_must_list_every_status() -> None:
    with pytest.raises(ValueError, match="no transitions"):
        Machine("broken", TaskStatus, {TaskStatus.QUEUED: frozenset()})


statuses = st.sampled_from(list(ImageStatus))


@given(st.lists(statuses, max_size=8))
def test_the_derived_status_is_the_highest_in_precedence(subs: list[ImageStatus]) -> None:
    derived = derive_host_status(subs)
    if not subs:
        assert derived is ImageStatus.QUEUED
        return
    assert derived in subs
    rank = ["deleting", "killed", "saving", "queued", "active"]
    assert rank.index(derived.value) == min(rank.index(s.value) for s in subs)


@given(st.lists(statuses, min_size=1, max_size=5), statuses)
def test_a_sub_image_change_the_table_allows_never_resurrects_its_host(
    subs: list[ImageStatus], new: ImageStatus
) -> None:
    """Moving one sub-image along its table never moves its host image out of killed or
    deleting (a killed host image is deleted, never resurrected)."""
    before = derive_host_status(subs)
    if not IMAGE.can(subs[0], new):
        return
    after = derive_host_status([new, *subs[1:]])
    if before in (ImageStatus.KILLED, ImageStatus.DELETING):
        assert after in (ImageStatus.KILLED, ImageStatus.DELETING) or new is ImageStatus.SAVING


def test_delete_refusals() -> None:
    assert delete_refusal(True, "active") == (
        "protected",
        "Deletion protection is enabled; disable it before deleting.",
    )
    assert delete_refusal(False, "deleting")[0] == "deleting"  # type: ignore[index]
    assert delete_refusal(False, "saving")[0] == "saving"  # type: ignore[index]
    assert delete_refusal(False, "queued")[0] == "saving"  # type: ignore[index]
    assert delete_refusal(False, "active") is None
    assert delete_refusal(False, "killed") is None  # killed objects can be deleted
