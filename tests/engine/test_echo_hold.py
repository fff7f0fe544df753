"""The downstream hold (``engine.echo.unchanged_since_claim``) and an upstream run's write
intents (``engine.echo.RunIntents``), over a real link table (both databases): a write the
opposite direction has in flight (an intent newer than its settled write, younger than
``IN_FLIGHT_BOUND``) holds the claimed entity; one older than the bound (a write that
failed) no longer does, nor one its settled write has caught up with."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import Engine

from sync_core.directory.essence import digest
from sync_core.directory.vocabulary import Direction
from sync_core.engine.echo import IN_FLIGHT_BOUND, Claimed, RunIntents, unchanged_since_claim
from sync_core.engine.entity_sync import EntitySync
from sync_core.engine.reconciler import Reconciler, RunRequest
from sync_core.store import links, runs
from sync_core.store.models import RunStatus, utcnow
from tests.conftest import make_settings
from tests.engine.fakes import Stored, User, fake_direction

UP = Direction.UPSTREAM


def _intent(engine: Engine, at: datetime, target: str = "auth-1") -> None:
    with engine.begin() as conn:
        links.record(conn, direction=links.intents_of(UP), now=at, rows=[
            links.LinkRow("user", "zs", target, digest({"name": "X2"}))])


def _holds(engine: Engine, claim: Claimed) -> bool:
    with engine.connect() as conn:
        return not unchanged_since_claim(conn, Direction.DOWNSTREAM, claim)


def test_an_upstream_write_in_flight_holds_the_claim_until_it_settles(engine: Engine) -> None:
    """The intent was recorded before the claim (the run's first request, whose webhook
    is the claim's), with the claim's digests read in full: the claim holds only because
    the write is in flight; once the run records it, the hold is the settled write's."""
    then = utcnow()
    with engine.begin() as conn:
        links.record(conn, direction=UP, now=then - timedelta(seconds=30), rows=[
            links.LinkRow("user", "zs", "auth-1", digest({"name": "X"}))])
    _intent(engine, then)
    since = then + timedelta(seconds=1)
    with engine.connect() as conn:
        written = links.echo_digests_by_target(conn, direction=UP,
                                               entities=[("user", "auth-1")])
    claim = Claimed("user", "auth-1", written[("user", "auth-1")], since)
    assert _holds(engine, claim)
    assert _holds(engine, replace(claim, written=None))  # a run's claim: by time alone
    assert not _holds(engine, Claimed("user", "auth-2", frozenset(), since))
    with engine.begin() as conn:  # the run ends: its write is recorded
        links.record(conn, direction=UP, now=then + timedelta(seconds=2), rows=[
            links.LinkRow("user", "zs", "auth-1", digest({"name": "X2"}))])
    again = then + timedelta(seconds=3)
    with engine.connect() as conn:
        written = links.echo_digests_by_target(conn, direction=UP,
                                               entities=[("user", "auth-1")])
    assert not _holds(engine, Claimed("user", "auth-1", written[("user", "auth-1")], again))


def test_an_upstream_intent_older_than_the_bound_no_longer_holds(engine: Engine) -> None:
    """A write that failed leaves its intent behind, newer than any settled write: past
    ``IN_FLIGHT_BOUND`` it holds the entity no more (else it would for ever)."""
    now = utcnow()
    _intent(engine, now - IN_FLIGHT_BOUND - timedelta(seconds=5))
    with engine.connect() as conn:
        written = links.echo_digests_by_target(conn, direction=UP,
                                               entities=[("user", "auth-1")])
    claim = Claimed("user", "auth-1", written.get(("user", "auth-1"), frozenset()), now)
    assert not _holds(engine, claim)
    _intent(engine, now - IN_FLIGHT_BOUND + timedelta(seconds=5))  # the same, still young
    assert _holds(engine, replace(claim, since=utcnow()))


async def test_an_upstream_run_records_its_intents_before_it_writes(engine: Engine) -> None:
    """A run whose writer records no intents of its own (upstream's) is given
    ``RunIntents``: before each write whose target id is known (an update's, or a
    batch's create before the operation's further requests), the state it will leave,
    under the direction's intents; the run records the write itself at its end."""
    d = fake_direction()
    d.source.users["ann"] = User("ann", "Ann Lee")
    d.target.users["ann"] = Stored("t-1", User("ann", "Ann"))
    # Creates, in one batch (the id is the batch's to give), their memberships after it.
    d.source.users.update({"bob": User("bob", "Bob"), "cy": User("cy", "Cy")})
    seen: list[bool] = []
    update = d.writer.write

    async def write(request: object, ids: object, made: object) -> None:
        with engine.connect() as conn:
            seen.append(links.in_flight(conn, direction=str(d.ports.direction), kind="user",
                                        target_id="t-1", after=utcnow() - IN_FLIGHT_BOUND))
        await update(request, ids, made)  # type: ignore[arg-type]

    d.writer.write = write  # type: ignore[method-assign]
    reconciler = Reconciler(make_settings("sqlite://"), engine, EntitySync(d.ports),
                            intents=RunIntents(engine, d.ports.direction))
    run_id = reconciler.create(RunRequest())
    await reconciler.execute(run_id, RunRequest())
    with engine.connect() as conn:
        run = runs.get(conn, run_id)
        intents = links.written(conn, direction=links.intents_of(d.ports.direction))
        settled = links.in_flight(conn, direction=str(d.ports.direction), kind="user",
                                  target_id="t-1", after=utcnow() - IN_FLIGHT_BOUND)
    assert run is not None and run["status"] == RunStatus.SUCCEEDED
    assert True in seen  # ann's update was in flight while it was written
    assert ("create-batch", ("bob", "cy")) in d.writer.calls, d.writer.calls
    assert sorted(intents, key=lambda row: row.source_key) == [
        links.LinkRow("user", "ann", "t-1", digest({"name": "Ann Lee"})),
        *(links.LinkRow("user", key, d.target.users[key].target_id, digest({"name": name}))
          for key, name in (("bob", "Bob"), ("cy", "Cy")))]
    assert not settled  # the run's end recorded it
