"""Two events that need the same Authing department created in WeCom at once (its own
``node-added`` and a member's event, claimed together): one creates it, the other waits
and takes its id, never reading the name it holds as a foreign department's (60008)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sync_core.directory.operations import Request
from sync_core.directory.vocabulary import Kind
from sync_core.errors import ConflictError, PermanentError
from sync_core.store.links import LinkRow
from sync_core.wecom.downstream import SOURCE_KEY
from sync_core.wecom.target import WeComWriter


class WeCom:
    """WeCom's department/create: the first call is answered when released; one made
    while a department of that name exists, or is being made, gets 60008."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.names: set[str] = set()
        self.creates = 0

    async def department_create(self, body: dict[str, Any]) -> int:
        self.creates += 1
        if body["name"] in self.names:
            raise ConflictError("department existed", code=60008, remote="wecom",
                                endpoint="department/create")
        self.names.add(body["name"])
        await self.release.wait()
        return 7

    async def department_list(self, parent: int) -> list[dict[str, Any]]:
        return []


class Ids:
    def __init__(self) -> None:
        self.rows: dict[str, str] = {}

    async def record(self, row: LinkRow) -> None:
        assert row.target_id is not None
        self.rows[row.source_key] = row.target_id

    async def wecom_id(self, kind: Kind, key: str) -> str | None:
        return self.rows.get(key)


class Target:
    def __init__(self) -> None:
        self.ids = Ids()


async def test_the_second_create_of_one_department_waits_and_takes_its_id() -> None:
    wecom, target = WeCom(), Target()
    writer = WeComWriter(wecom, None, target, None)  # type: ignore[arg-type]

    async def create() -> tuple[dict[str, str], dict[str, str]]:
        ids: dict[str, str] = {}
        made: dict[str, str] = {}
        await writer.write(Request("department/create",
                                   {SOURCE_KEY: "d-1", "name": "研发部"}), ids, made)
        return ids, made

    first = asyncio.ensure_future(create())
    second = asyncio.ensure_future(create())
    await asyncio.sleep(0.01)
    wecom.release.set()
    done = await asyncio.gather(first, second, return_exceptions=True)
    # Both have the department's id as their operation's target (its link row is
    # recorded with it); WeCom was asked once.
    assert done == [({"d-1": "7"}, {"d-1": "7"})] * 2 and target.ids.rows == {"d-1": "7"}
    assert wecom.creates == 1


async def test_a_name_a_foreign_department_holds_stays_permanent() -> None:
    wecom, target = WeCom(), Target()
    wecom.names.add("研发部")
    writer = WeComWriter(wecom, None, target, None)  # type: ignore[arg-type]
    with pytest.raises(PermanentError) as caught:
        await writer.write(Request("department/create",
                                   {SOURCE_KEY: "d-1", "name": "研发部"}), {}, {})
    assert type(caught.value) is PermanentError and "60008" in str(caught.value)


class Listing(WeCom):
    """WeCom with department 6, 研发部, under the root (department/list of the parent)."""

    async def department_list(self, parent: int) -> list[dict[str, Any]]:
        return [{"id": 1, "name": "root", "parentid": 0},
                {"id": 6, "name": "研发部", "parentid": parent}]

    async def department_simplelist(self) -> list[dict[str, Any]]:
        return [{"id": 1, "parentid": 0}, {"id": 6, "parentid": 1}]


@pytest.mark.parametrize("linked", [False, True])
async def test_a_taken_name_names_the_department_that_holds_it(linked: bool) -> None:
    """README: 60008 names the holder where the parent's children can be listed, whether
    the department is a foreign one (permanent) or ours by the link table (re-planned)."""
    wecom, target = Listing(), Target()
    wecom.names.add("研发部")
    if linked:
        target.ids.rows["d-1"] = "6"
    writer = WeComWriter(wecom, None, target, None)  # type: ignore[arg-type]
    with pytest.raises(ConflictError if linked else PermanentError) as caught:
        await writer.write(Request("department/create",
                                   {SOURCE_KEY: "d-1", "name": "研发部", "parentid": 1}),
                           {}, {})
    assert "WeCom department 6 holds it" in str(caught.value), caught.value
    assert (type(caught.value) is PermanentError) is not linked
