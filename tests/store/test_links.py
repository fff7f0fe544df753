"""The link table: one row per (direction, kind, source key), found by target id too, and
the helper that says whether a target state is what we last wrote (both databases)."""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

from sync_core.directory.essence import digest
from sync_core.store import links, migrate
from sync_core.store.db import make_engine
from sync_core.store.models import utcnow


def _write(engine: Engine, direction: str, *rows: links.LinkRow) -> None:
    with engine.begin() as conn:
        links.record(conn, direction=direction, rows=rows, now=utcnow())


def test_a_link_is_found_by_source_key_and_by_target_id(engine: Engine) -> None:
    _write(engine, "upstream", links.LinkRow("user", "zhangsan", "auth-1", digest({"a": 1})),
           links.LinkRow("department", "2", "dept-2", digest({"name": "研发"})))
    with engine.connect() as conn:
        by_source = links.by_source(conn, direction="upstream", kind="user", key="zhangsan")
        by_target = links.by_target(conn, direction="upstream", kind="user", target_id="auth-1")
        other_kind = links.by_target(conn, direction="upstream", kind="department",
                                     target_id="auth-1")
        other_direction = links.by_source(conn, direction="downstream", kind="user",
                                          key="zhangsan")
    assert by_source == by_target == links.LinkRow("user", "zhangsan", "auth-1",
                                                   digest({"a": 1}))
    assert other_kind is None and other_direction is None
    indexes = {i["name"]: i["column_names"] for i in inspect(engine).get_indexes("links")}
    assert indexes["ix_links_target"] == ["target_id", "direction", "kind"]


def test_last_wrote_answers_only_for_the_exact_essence(engine: Engine) -> None:
    written = {"externalId": "zhangsan", "name": "张三", "departments": ["1", "2"]}
    _write(engine, "upstream", links.LinkRow("user", "zhangsan", "auth-1", digest(written)))
    with engine.connect() as conn:
        def asks(essence: object, target_id: str = "auth-1", direction: str = "upstream") -> bool:
            return links.last_wrote(conn, direction=direction, kind="user", target_id=target_id,
                                    essence_hash=digest(essence))  # type: ignore[arg-type]

        assert asks(dict(written))
        # None and "" both mean empty; numbers read back as text.
        assert asks({**written, "email": None}) == asks({**written, "email": ""})
        assert not asks({**written, "name": "张三丰"})  # someone changed it after us
        assert not asks(written, target_id="auth-2")
        assert not asks(written, direction="downstream")
        assert not links.last_wrote(conn, direction="upstream", kind="user",
                                    target_id="auth-1", essence_hash=None)


def test_a_delete_clears_the_essence_and_keeps_the_target_id(engine: Engine) -> None:
    _write(engine, "upstream", links.LinkRow("user", "li", "auth-9", digest({"name": "李"})))
    _write(engine, "upstream", links.LinkRow("user", "li", None, None))
    with engine.connect() as conn:
        row = links.by_source(conn, direction="upstream", kind="user", key="li")
    assert row == links.LinkRow("user", "li", "auth-9", None)


def test_migration_0009_reorders_the_target_index_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        def target_index() -> list[str]:
            return {i["name"]: i["column_names"]
                    for i in inspect(engine).get_indexes("links")}["ix_links_target"]

        migrate.upgrade(engine)
        _write(engine, "upstream", links.LinkRow("user", "zhangsan", "auth-1", "d1"))
        migrate.downgrade(engine, "0008_console")
        assert target_index() == ["direction", "kind", "target_id"]
        migrate.upgrade(engine)
        assert target_index() == ["target_id", "direction", "kind"]
        with engine.connect() as conn:
            assert links.by_target(conn, direction="upstream", kind="user",
                                   target_id="auth-1") == links.LinkRow(
                "user", "zhangsan", "auth-1", "d1")
    finally:
        engine.dispose()


def test_migration_0007_keeps_identities_and_clears_the_old_hashes(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0006_delivery")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO links (direction, kind, key, target_id, state_hash, updated_at) "
                "VALUES ('upstream', 'user', 'wang', 'auth-3', :h, :t)"),
                {"h": "f" * 64, "t": utcnow()})
        migrate.upgrade(engine)
        with engine.connect() as conn:
            row = links.by_target(conn, direction="upstream", kind="user", target_id="auth-3")
        # The old hash was of the WeCom record, never of what Authing shows: it is dropped.
        assert row == links.LinkRow("user", "wang", "auth-3", None)
        migrate.downgrade(engine, "0006_delivery")
        with engine.connect() as conn:
            back = conn.execute(text("SELECT key, target_id FROM links")).one()
        assert tuple(back) == ("wang", "auth-3")
    finally:
        engine.dispose()


def test_an_echo_digest_is_stale_once_the_own_direction_wrote_since(engine: Engine) -> None:
    """Downstream wrote member zs (X); upstream then wrote WeCom's change to Authing: the
    digest of X no longer tells an echo from a change back to X."""
    from datetime import timedelta

    first = utcnow()
    with engine.begin() as conn:
        links.record(conn, direction="downstream", now=first, rows=[
            links.LinkRow("user", "auth-1", "zs", digest({"name": "X"})),
            links.LinkRow("user", "auth-2", "ls", digest({"name": "Y"}))])
        links.record(conn, direction="upstream", now=first + timedelta(seconds=1), rows=[
            links.LinkRow("user", "zs", "auth-1", digest({"name": "Z"}))])
        links.record(conn, direction="upstream", now=first - timedelta(seconds=1), rows=[
            links.LinkRow("user", "ls", "auth-2", digest({"name": "Y"}))])
    wanted = [("user", "zs"), ("user", "ls")]
    with engine.connect() as conn:
        every = links.digests_by_target(conn, direction="downstream", entities=wanted)
        fresh = links.digests_by_target(conn, direction="downstream", entities=wanted,
                                        superseded_by="upstream")
    assert set(every) == {("user", "zs"), ("user", "ls")}
    assert fresh == {("user", "ls"): digest({"name": "Y"})}  # zs: upstream wrote since


def test_the_echo_read_knows_a_write_in_flight_and_forgets_an_older_one(engine: Engine) -> None:
    """A write's intent (recorded before the write) counts with the recorded write until
    a later write is recorded; upstream's own later write supersedes both."""
    from datetime import timedelta

    first = utcnow()
    intents = links.intents_of("downstream")
    with engine.begin() as conn:
        links.record(conn, direction="downstream", now=first, rows=[
            links.LinkRow("user", "auth-1", "zs", digest({"name": "X"})),
            links.LinkRow("user", "auth-2", "ls", digest({"name": "Y"}))])
        # zs: a write in flight since; ls: a write that failed before the recorded one.
        links.record(conn, direction=intents, now=first + timedelta(seconds=1), rows=[
            links.LinkRow("user", "auth-1", "zs", digest({"name": "X2"}))])
        links.record(conn, direction=intents, now=first - timedelta(seconds=1), rows=[
            links.LinkRow("user", "auth-2", "ls", digest({"name": "Y0"})),
            links.LinkRow("user", "auth-3", "ww", digest({"name": "W"}))])  # a create
    wanted = [("user", "zs"), ("user", "ls"), ("user", "ww")]
    with engine.connect() as conn:
        found = links.echo_digests_by_target(conn, direction="downstream", entities=wanted)
        involving = links.involving(conn, kind="user", key="zs")
    assert found == {("user", "zs"): {digest({"name": "X"}), digest({"name": "X2"})},
                     ("user", "ls"): {digest({"name": "Y"})},
                     ("user", "ww"): {digest({"name": "W"})}}
    assert [row["direction"] for row in involving] == ["downstream"]  # intents not shown
    with engine.begin() as conn:
        links.record(conn, direction="upstream", now=first + timedelta(seconds=2), rows=[
            links.LinkRow("user", "zs", "auth-1", digest({"name": "Z"}))])
    with engine.connect() as conn:
        fresh = links.echo_digests_by_target(conn, direction="downstream", entities=wanted,
                                             superseded_by="upstream")
    assert ("user", "zs") not in fresh and ("user", "ls") in fresh


def test_a_write_recorded_after_a_time_is_found_whatever_its_digest(engine: Engine) -> None:
    """``written_since``: a write (or an intent) of the direction to the target id, recorded
    after the time given; one recorded at that time or before is not, nor another
    direction's, nor another target's."""
    from datetime import timedelta

    then = utcnow()
    same = digest({"name": "X"})
    with engine.begin() as conn:
        links.record(conn, direction="upstream", now=then, rows=[
            links.LinkRow("user", "zs", "auth-1", same)])
        links.record(conn, direction="downstream", now=then + timedelta(seconds=1), rows=[
            links.LinkRow("user", "auth-1", "zs", same)])
    with engine.connect() as conn:
        assert not links.written_since(conn, direction="upstream", kind="user",
                                       target_id="auth-1", since=then)
    with engine.begin() as conn:
        links.record(conn, direction="upstream", now=then + timedelta(seconds=2), rows=[
            links.LinkRow("user", "zs", "auth-1", same)])  # the same state, written again
    with engine.connect() as conn:
        assert links.written_since(conn, direction="upstream", kind="user",
                                   target_id="auth-1", since=then)
        assert not links.written_since(conn, direction="upstream", kind="user",
                                       target_id="auth-2", since=then)
        assert not links.written_since(conn, direction="upstream", kind="department",
                                       target_id="auth-1", since=then)


def test_a_write_in_flight_is_an_intent_newer_than_the_settled_write(engine: Engine) -> None:
    """``in_flight``: an intent of the direction to the target id, recorded after the
    time given and after the direction's settled write of the same entity (none: a
    first write); an intent the settled write has caught up with is history, as is one
    recorded before the time given (a write that failed long ago)."""
    from datetime import timedelta

    then = utcnow()
    intents = links.intents_of("upstream")
    with engine.begin() as conn:
        links.record(conn, direction="upstream", now=then, rows=[
            links.LinkRow("user", "zs", "auth-1", digest({"name": "X"}))])
        links.record(conn, direction=intents, now=then + timedelta(seconds=1), rows=[
            links.LinkRow("user", "zs", "auth-1", digest({"name": "X2"})),
            links.LinkRow("user", "ls", "auth-2", digest({"name": "Y"}))])  # none settled
        links.record(conn, direction=intents, now=then - timedelta(seconds=5), rows=[
            links.LinkRow("user", "ww", "auth-3", digest({"name": "W"}))])  # failed, old
    after = then - timedelta(seconds=2)
    with engine.connect() as conn:
        assert links.in_flight(conn, direction="upstream", kind="user", target_id="auth-1",
                               after=after)
        assert links.in_flight(conn, direction="upstream", kind="user", target_id="auth-2",
                               after=after)
        assert not links.in_flight(conn, direction="upstream", kind="user",
                                   target_id="auth-3", after=after)  # older than the bound
        assert not links.in_flight(conn, direction="upstream", kind="department",
                                   target_id="auth-1", after=after)
        assert not links.in_flight(conn, direction="downstream", kind="user",
                                   target_id="auth-1", after=after)
    with engine.begin() as conn:  # the write settles: recorded with the run's end
        links.record(conn, direction="upstream", now=then + timedelta(seconds=2), rows=[
            links.LinkRow("user", "zs", "auth-1", digest({"name": "X2"}))])
    with engine.connect() as conn:
        assert not links.in_flight(conn, direction="upstream", kind="user",
                                   target_id="auth-1", after=after)
        assert links.in_flight(conn, direction="upstream", kind="user", target_id="auth-2",
                               after=after)
        # With a time the hold's claim was read: a write recorded since it, in one probe.
        assert links.in_flight(conn, direction="upstream", kind="user", target_id="auth-1",
                               after=after, since=then + timedelta(seconds=1))
        assert not links.in_flight(conn, direction="upstream", kind="user",
                                   target_id="auth-1", after=after,
                                   since=then + timedelta(seconds=2))
        assert links.in_flight(conn, direction="upstream", kind="user", target_id="auth-3",
                               after=after, since=then - timedelta(seconds=6))
