"""Login throttling (SPEC §9.1) and the password pool, on both databases.

The failures go through one application (the test client) and a second one served over
loopback shares the database, as two API processes would: the throttle is counted there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, update

from hostimage.api.passwords import PasswordPool
from hostimage.db.base import utcnow
from hostimage.db.models import LoginAttempt, User
from hostimage.domain.throttle import MAX_FAILURES, WINDOW, address_key, user_key
from tests.api.conftest import PASSWORD, Api, World
from tests.api.live_server import client_from, second_process, serve

# The address the test client's requests come from.
TESTCLIENT = "testclient"


def _login(api: Api | httpx.Client, user: str, password: str, domain: str = "Default") -> Any:
    body = {"username": user, "password": password, "domain": domain}
    return api.post("/auth/login", json=body)


def _fail(api: Api | httpx.Client, user: str, times: int) -> None:
    for _ in range(times):
        r = _login(api, user, "wrong-password")
        assert r.status_code == 401, r.text
        assert r.json()["code"] == "bad_credentials"


def _throttled(r: Any) -> int:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "too_many_attempts"
    wait = int(r.headers["retry-after"])
    assert 1 <= wait <= WINDOW.total_seconds()
    return wait


@pytest.fixture()
def live(world: World) -> Iterator[str]:
    """A second API process on the world's database, served on loopback."""
    with serve(second_process(world.client.app)) as base:  # type: ignore[attr-defined]
        yield base


def _attempts(world: World) -> Any:
    return world.client.app.state.session_factory  # type: ignore[attr-defined]


def test_five_failures_throttle_the_user_in_every_process(world: World, live: str) -> None:
    world.add_user("alice", "member", "p0a")
    anonymous = Api(world.client)
    _fail(anonymous, "alice", MAX_FAILURES)
    # the other process, from another address, counts the same failures for alice
    with client_from(live, "127.0.0.2") as other:
        wait = _throttled(_login(other, "alice", PASSWORD))
        assert wait >= WINDOW.total_seconds() - 10
        # still 429, with or without the right password: it is not even looked at
        _throttled(_login(other, "alice", "wrong-password"))
    _throttled(_login(anonymous, "alice", PASSWORD))
    # refused attempts add no failures: the window is not extended by them
    with _attempts(world)() as s:
        n = s.scalar(select(func.count()).where(LoginAttempt.key == user_key("alice", "Default")))
        assert n == MAX_FAILURES


def test_another_user_from_another_address_is_not_affected(world: World, live: str) -> None:
    world.add_user("alice", "member", "p0a")
    world.add_user("bob", "member", "p0a")
    with client_from(live, "127.0.0.3") as attacker, client_from(live, "127.0.0.4") as bob:
        _fail(attacker, "alice", MAX_FAILURES)
        _throttled(_login(attacker, "alice", PASSWORD))
        r = _login(bob, "bob", PASSWORD)
        assert r.status_code == 200, r.text
        # the same user in another domain is another key
        r = _login(bob, "alice", PASSWORD, domain="Nowhere")
        assert r.status_code == 401


def test_a_success_clears_the_users_and_the_address_failures(world: World) -> None:
    world.add_user("alice", "member", "p0a")
    anonymous = Api(world.client)
    _fail(anonymous, "alice", MAX_FAILURES - 1)
    assert _login(anonymous, "alice", PASSWORD).status_code == 200
    _fail(anonymous, "alice", MAX_FAILURES - 1)  # counted afresh: still allowed
    assert _login(anonymous, "alice", PASSWORD).status_code == 200
    with _attempts(world)() as s:
        keys = [user_key("alice", "Default"), address_key(TESTCLIENT)]
        assert not s.scalar(select(func.count()).where(LoginAttempt.key.in_(keys)))


def test_five_failures_from_one_address_throttle_it_across_users(world: World, live: str) -> None:
    for name in ("u1", "u2", "u3", "u4", "carol"):
        world.add_user(name, "member", "p0a")
    with client_from(live, "127.0.0.5") as guesser:
        for name in ("u1", "u2", "u3", "u4", "nobody"):
            _fail(guesser, name, 1)
        # a sixth user, right password: the address is throttled
        _throttled(_login(guesser, "carol", PASSWORD))
    with client_from(live, "127.0.0.6") as elsewhere:
        assert _login(elsewhere, "carol", PASSWORD).status_code == 200


def test_the_window_slides(world: World) -> None:
    world.add_user("alice", "member", "p0a")
    anonymous = Api(world.client)
    _fail(anonymous, "alice", MAX_FAILURES)
    _throttled(_login(anonymous, "alice", PASSWORD))
    key = user_key("alice", "Default")
    factory = _attempts(world)

    def first_failure_at(when: Any) -> None:
        # the first failed login's rows: its user's and its address's
        with factory() as s:
            oldest = s.scalar(
                select(LoginAttempt.attempt).where(LoginAttempt.key == key).order_by("id")
            )
            s.execute(update(LoginAttempt).where(LoginAttempt.attempt == oldest).values(at=when))
            s.commit()

    # the oldest failure is 50 s old: it leaves the window in about 10 s
    first_failure_at(utcnow() - WINDOW + timedelta(seconds=10))
    assert _throttled(_login(anonymous, "alice", PASSWORD)) <= 11
    first_failure_at(utcnow() - WINDOW - timedelta(seconds=1))
    # four failures in the window: one more try is allowed, and it succeeds
    assert _login(anonymous, "alice", PASSWORD).status_code == 200


def test_concurrent_failures_are_all_counted(world: World, live: str) -> None:
    world.add_user("alice", "member", "p0a")
    with client_from(live, "127.0.0.7") as c, ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: _login(c, "alice", "wrong").status_code, range(12)))
        assert set(answers) <= {401, 429}, answers
        failed = answers.count(401)
        assert failed >= MAX_FAILURES
        with _attempts(world)() as s:
            rows = s.execute(
                select(LoginAttempt.pending, func.count())
                .where(LoginAttempt.key == user_key("alice", "Default"))
                .group_by(LoginAttempt.pending)
            ).all()
        assert dict(rows) == {False: failed}  # every failure recorded, nothing left pending
        _throttled(_login(c, "alice", PASSWORD))


def _slow_users(world: World, names: list[str]) -> None:
    """Users whose password takes seconds to verify (a real argon2 cost)."""
    slow = PasswordHasher(time_cost=40, memory_cost=65536, parallelism=1).hash(PASSWORD)
    for name in names:
        world.add_user(name, "member", "p0a")
    with _attempts(world)() as s:
        s.execute(update(User).where(User.name.in_(names)).values(password_hash=slow))
        s.commit()


def _in_pool(pool: PasswordPool) -> int:
    return pool.waiting + pool.running


def _wait_for(cond: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def test_logins_wait_in_their_own_pool_while_other_requests_go_on(world: World) -> None:
    app = second_process(world.client.app)  # type: ignore[attr-defined]
    settings = app.state.settings
    pool = app.state.password_pool = PasswordPool(settings.password_hash_threads)
    slow = [f"slow{i}" for i in range(pool.threads)]
    queued = [f"user{i}" for i in range(settings.api_threads)]
    _slow_users(world, slow)
    for name in queued:
        world.add_user(name, "member", "p0a")
    token = world.admin.token
    with serve(app) as base, client_from(base) as c, ThreadPoolExecutor(8) as ex:
        logins: list[Future[Any]] = [ex.submit(_login, c, n, PASSWORD) for n in slow]
        _wait_for(lambda: pool.running == pool.threads, "the slow logins did not start")
        logins += [ex.submit(_login, c, n, PASSWORD) for n in queued]
        _wait_for(lambda: pool.waiting == len(queued), "the other logins did not queue")
        # Every pool thread is taken and more logins wait than there are use-case threads,
        # yet other requests are answered: the logins wait in their own pool.
        for path in ("/auth/whoami", "/host-images", "/settings"):
            r = c.get(path, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
        assert (pool.running, pool.waiting) == (pool.threads, len(queued))
        assert [f.result().status_code for f in logins] == [200] * len(logins)
    assert _in_pool(pool) == 0


def test_a_full_password_queue_answers_busy(world: World) -> None:
    app = second_process(world.client.app)  # type: ignore[attr-defined]
    pool = app.state.password_pool = PasswordPool(1)
    queued = [f"user{i}" for i in range(pool.max_waiting)]
    _slow_users(world, ["slow"])
    for name in [*queued, "late1", "late2"]:
        world.add_user(name, "member", "p0a")
    with serve(app) as base, client_from(base) as c, ThreadPoolExecutor(12) as ex:
        first = [ex.submit(_login, c, "slow", PASSWORD)]
        _wait_for(lambda: pool.running == 1, "the slow login did not start")
        first += [ex.submit(_login, c, n, PASSWORD) for n in queued]
        _wait_for(lambda: pool.waiting == pool.max_waiting, "the queue did not fill")
        for name in ("late1", "late2"):
            r = _login(c, name, PASSWORD)
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "busy"
            assert int(r.headers["retry-after"]) >= 1
        assert pool.running == 1
        assert [f.result().status_code for f in first] == [200] * len(first)
        # a refused login was not counted against its user or address
        with _attempts(world)() as s:
            assert not s.scalar(select(func.count()).select_from(LoginAttempt))
        # once the queue has room, the same users log in
        assert _login(c, "late1", PASSWORD).status_code == 200
