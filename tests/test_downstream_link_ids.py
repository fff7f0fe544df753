"""What the downstream user read takes from the link table in one lookup
(``LinkIds.member``): the member's userid, downstream's last write, whether upstream holds
an open event about the member, and who holds the userid."""

from __future__ import annotations

from sqlalchemy import Engine

from sync_core.directory.vocabulary import Kind
from sync_core.store import links
from sync_core.store.inbox import NewEvent, insert_new
from sync_core.store.models import utcnow
from sync_core.wecom.target import LinkIds


def _link(engine: Engine, direction: str, source_key: str, target_id: str | None,
          digest: str | None = None) -> None:
    with engine.begin() as conn:
        links.record(conn, direction=direction, now=utcnow(),
                     rows=[links.LinkRow("user", source_key, target_id, digest)])


async def test_a_user_never_linked_is_first_sight(engine: Engine) -> None:
    found = await LinkIds(engine).member("a-1")
    assert (found.written, found.userid, found.busy, found.holder) == (None, None, False, None)


async def test_downstreams_own_write_gives_the_userid_digest_and_holder(
        engine: Engine) -> None:
    _link(engine, "downstream", "a-1", "zhangsan", "d1")
    found = await LinkIds(engine).member("a-1")
    assert found.userid == "zhangsan" and found.written is not None
    assert found.written.essence_hash == "d1"
    assert (found.busy, found.holder) == (False, "a-1")


async def test_an_upstream_link_gives_the_userid_and_an_open_upstream_event_is_busy(
        engine: Engine) -> None:
    _link(engine, "upstream", "lisi", "a-2")  # upstream wrote WeCom's lisi into Authing a-2
    ids = LinkIds(engine)
    found = await ids.member("a-2")
    assert (found.written, found.userid, found.busy, found.holder) == (None, "lisi", False,
                                                                       "a-2")
    with engine.begin() as conn:
        insert_new(conn, [NewEvent(source="wecom", dedupe_key="k", entity_kind=Kind.USER,
                                   entity_key="lisi", event_type="update_user", payload={},
                                   received_at=utcnow())])
    assert (await ids.member("a-2")).busy


async def test_another_authing_user_holding_the_userid_is_named(engine: Engine) -> None:
    _link(engine, "downstream", "a-1", "wangwu", "d1")
    _link(engine, "upstream", "wangwu", "a-9")
    # Both rows name wangwu; downstream's own row is the one that holds it.
    assert (await LinkIds(engine).member("a-1")).holder == "a-1"
