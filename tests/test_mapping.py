"""WeCom → Authing mapping: one row per rule."""

from __future__ import annotations

import pytest

from sync_core.authing.mapping import (
    CUSTOM_VALUE_MAX,
    DesiredDepartment,
    MappingPolicy,
    UsernameSource,
    map_department,
    map_user,
    memberships_of,
    split_mobile,
)
from sync_core.directory.model import Membership
from sync_core.wecom.model import WeComDepartment, WeComUser


@pytest.mark.parametrize(("mobile", "default", "expected"), [
    ("13800000000", "+86", ("+86", "13800000000")),
    ("+86 13800000000", "+86", ("+86", "13800000000")),
    ("+852 61234567", "+86", ("+852", "61234567")),
    ("+852-6123 4567", "+86", ("+852", "61234567")),
    ("+8613800000000", "+86", ("+86", "13800000000")),
    ("+85261234567", "+86", ("+852", "61234567")),
    ("+1 (415) 555-0100", "+86", ("+1", "4155550100")),
    ("0086 13800000000", "+86", ("+86", "13800000000")),
    ("61234567", "+852", ("+852", "61234567")),
    ("  13800000000 ", "+86", ("+86", "13800000000")),
    ("+999123456789", "+86", None),  # no separator and an unknown code: not guessed
    ("not a phone", "+86", None),
    ("", "+86", None),
])
def test_split_mobile(mobile: str, default: str, expected: tuple[str, str] | None) -> None:
    assert split_mobile(mobile, default) == expected


@pytest.mark.parametrize(("user", "expected"), [
    pytest.param(WeComUser("u", gender=1), {"gender": "M"}, id="gender-1-M"),
    pytest.param(WeComUser("u", gender=2), {"gender": "F"}, id="gender-2-F"),
    pytest.param(WeComUser("u", gender=0), {"gender": "U"}, id="gender-0-U"),
    pytest.param(WeComUser("u", gender=9), {}, id="gender-unknown-code"),
    pytest.param(WeComUser("u", status=1), {"status": "Activated"}, id="status-1"),
    pytest.param(WeComUser("u", status=2), {"status": "Suspended"}, id="status-2"),
    pytest.param(WeComUser("u", status=4), {"status": "Activated"}, id="status-4-not-joined"),
    pytest.param(WeComUser("u", status=5), {"status": "Resigned"}, id="status-5"),
    pytest.param(WeComUser("u", status=3), {}, id="status-unknown-code"),
    pytest.param(WeComUser("u", name="张三"), {"name": "张三"}, id="name"),
    pytest.param(WeComUser("u", mobile="+852 61234567"),
                 {"phone": "61234567", "phoneCountryCode": "+852"}, id="mobile-split"),
    pytest.param(WeComUser("u", mobile=""), {"phone": None}, id="mobile-cleared"),
    pytest.param(WeComUser("u", mobile="garbage"), {}, id="mobile-unparseable-unknown"),
    pytest.param(WeComUser("u", email="a@b.c"), {"email": "a@b.c"}, id="email"),
    pytest.param(WeComUser("u", email=""), {"email": None}, id="email-cleared"),
    pytest.param(WeComUser("u", avatar="http://x/0"), {"photo": "http://x/0"}, id="avatar"),
    pytest.param(WeComUser("u", department=(1,)), {}, id="trimmed-nothing-known"),
])
def test_map_user_fields(user: WeComUser, expected: dict) -> None:
    assert dict(map_user(user).fields) == expected


def test_unknown_fields_produce_no_attributes() -> None:
    desired = map_user(WeComUser("u1"))
    assert desired.fields == ()
    assert desired.memberships is None
    assert dict(desired.custom_data) == {"wechatwork_user_id": "u1"}


@pytest.mark.parametrize(("source", "user", "fields", "create_only"), [
    (UsernameSource.USERID, WeComUser("zs", alias="jack"), {}, {"username": "zs"}),
    (UsernameSource.NONE, WeComUser("zs", alias="jack"), {}, {}),
    (UsernameSource.ALIAS, WeComUser("zs", alias="jack"), {"username": "jack"}, {}),
    (UsernameSource.ALIAS, WeComUser("zs", alias=""), {"username": "zs"}, {}),
    (UsernameSource.ALIAS, WeComUser("zs"), {}, {}),  # alias unknown: leave username alone
])
def test_username_source(source: UsernameSource, user: WeComUser, fields: dict,
                         create_only: dict) -> None:
    desired = map_user(user, MappingPolicy(username_source=source))
    assert dict(desired.fields) == fields
    assert dict(desired.create_only) == create_only


@pytest.mark.parametrize(("user", "custom_fields", "expected"), [
    pytest.param(WeComUser("zs"), (), {"wechatwork_user_id": "zs"}, id="ids-only"),
    pytest.param(WeComUser("zs", department=(1, 3)), (),
                 {"wechatwork_user_id": "zs", "wechatwork_department_ids": "1,3"},
                 id="department-ids"),
    pytest.param(WeComUser("zs", department=()), (),
                 {"wechatwork_user_id": "zs", "wechatwork_department_ids": ""},
                 id="no-departments-known"),
    pytest.param(WeComUser("zs", position="PM", direct_leader=("a", "b")),
                 (("position", "title"), ("direct_leader", "leaders"), ("alias", "alias")),
                 {"wechatwork_user_id": "zs", "title": "PM", "leaders": "a,b"},
                 id="configured-fields-known-only"),
    pytest.param(WeComUser("zs", extattr=(("爱好", "旅游"),)),
                 (("extattr.爱好", "hobby"), ("extattr.卡号", "card")),
                 {"wechatwork_user_id": "zs", "hobby": "旅游", "card": ""}, id="extattr"),
    pytest.param(WeComUser("zs"), (("extattr.爱好", "hobby"),),
                 {"wechatwork_user_id": "zs"}, id="extattr-unknown"),
    pytest.param(WeComUser("zs", address="x" * 2000), (("address", "addr"),),
                 {"wechatwork_user_id": "zs", "addr": "x" * CUSTOM_VALUE_MAX}, id="truncated"),
])
def test_custom_data(user: WeComUser, custom_fields: tuple, expected: dict) -> None:
    desired = map_user(user, MappingPolicy(custom_fields=custom_fields))
    assert dict(desired.custom_data) == expected


@pytest.mark.parametrize("kwargs", [
    {"default_country_code": "86"},
    {"custom_fields": (("salary", "salary"),)},
    {"custom_fields": (("position", "wechatwork_user_id"),)},
    {"custom_fields": (("position", ""),)},
])
def test_mapping_policy_rejects(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        MappingPolicy(**kwargs)


@pytest.mark.parametrize(("user", "expected"), [
    pytest.param(WeComUser("u"), None, id="unknown"),
    pytest.param(WeComUser("u", department=()), (), id="none"),
    pytest.param(WeComUser("u", department=(2, 3), is_leader_in_dept=(1, 0), main_department=3),
                 (Membership(2, True, False), Membership(3, False, True)), id="full"),
    pytest.param(WeComUser("u", department=(2, 3)),
                 (Membership(2), Membership(3)), id="flags-unknown"),
    pytest.param(WeComUser("u", department=(2, 3), is_leader_in_dept=(1,)),
                 (Membership(2), Membership(3)), id="misaligned-leaders-ignored"),
    pytest.param(WeComUser("u", department=(2, 2, 3), is_leader_in_dept=(0, 0, 1)),
                 (Membership(2, False), Membership(3, True)), id="duplicates"),
])
def test_memberships(user: WeComUser, expected: tuple | None) -> None:
    assert memberships_of(user) == expected


@pytest.mark.parametrize(("dept", "expected"), [
    (WeComDepartment(2, "研发", 1, 5), DesiredDepartment(
        2, "2", "研发", 1,
        (("wechatwork_department_id", "2"), ("wechatwork_parent_department_id", "1")))),
    (WeComDepartment(7), DesiredDepartment(7, "7", None, None,
                                           (("wechatwork_department_id", "7"),))),
])
def test_map_department(dept: WeComDepartment, expected: DesiredDepartment) -> None:
    assert map_department(dept) == expected


def test_identity() -> None:
    desired = map_user(WeComUser("zhangsan", renamed_from="zs1"))
    assert (desired.external_id, desired.renamed_from) == ("zhangsan", "zs1")
