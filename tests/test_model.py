"""Canonical model: what each payload says, and that what it does not say stays unknown."""

from __future__ import annotations

import pytest

from sync_core.authing.model import AuthingDepartment, AuthingMembership, AuthingUser
from sync_core.wecom.events import ExtAttr, PartyChange, UserChange, parse_event
from sync_core.wecom.model import WeComDepartment, WeComUser

FULL_API_USER = {
    "errcode": 0, "errmsg": "ok",
    "userid": "zhangsan", "name": "张三", "department": [1, 2], "order": [1, 2],
    "position": "产品经理", "mobile": "+86 13800000000", "gender": "1",
    "email": "zhangsan@example.com", "biz_mail": "zhangsan@corp.wecom.work",
    "is_leader_in_dept": [1, 0], "direct_leader": ["lisi"], "avatar": "http://a/0",
    "telephone": "020-123456", "alias": "jackzhang", "address": "广州市",
    "open_userid": "woxx", "main_department": 1, "status": 1, "english_name": "jack",
    "extattr": {"attrs": [
        {"type": 0, "name": "爱好", "text": {"value": "旅游"}},
        {"type": 1, "name": "主页", "web": {"url": "https://example.com", "title": "x"}},
    ]},
}


@pytest.mark.parametrize(("payload", "expected"), [
    pytest.param(FULL_API_USER, WeComUser(
        userid="zhangsan", name="张三", department=(1, 2), main_department=1,
        is_leader_in_dept=(1, 0), position="产品经理", mobile="+86 13800000000", gender=1,
        email="zhangsan@example.com", biz_mail="zhangsan@corp.wecom.work", status=1,
        avatar="http://a/0", alias="jackzhang", telephone="020-123456", address="广州市",
        english_name="jack", direct_leader=("lisi",),
        extattr=(("爱好", "旅游"), ("主页", "https://example.com")), open_userid="woxx",
    ), id="every-field"),
    pytest.param({"userid": "u1", "name": "U"}, WeComUser(userid="u1", name="U"),
                 id="absent-is-unknown"),
    pytest.param(  # apps created after 2022-06-20 get these withheld as ""/"0"
        {"userid": "u1", "mobile": "", "email": "", "avatar": "", "gender": "0",
         "biz_mail": "", "address": "", "position": ""},
        WeComUser(userid="u1", position=""), id="withheld-empty-is-unknown"),
    pytest.param({"userid": "u1", "gender": 2, "status": "5", "department": "3,4"},
                 WeComUser(userid="u1", gender=2, status=5, department=(3, 4)),
                 id="lenient-scalars"),
])
def test_wecom_user_from_api(payload: dict, expected: WeComUser) -> None:
    assert WeComUser.from_api(payload) == expected


@pytest.mark.parametrize(("payload", "message"), [
    ({"name": "no id"}, "userid"),
    ({"userid": "u", "department": [1, "x"]}, "department"),
    ({"userid": "u", "name": {"a": 1}}, "name"),
    ({"userid": "u", "extattr": {"attrs": [{"type": 0}]}}, "extattr"),
])
def test_wecom_user_from_api_rejects_bad_shapes(payload: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WeComUser.from_api(payload)


def _event_xml(body: str) -> bytes:
    return (f"<xml><ToUserName>corp</ToUserName><FromUserName>sys</FromUserName>"
            f"<CreateTime>1</CreateTime><MsgType>event</MsgType><Event>change_contact</Event>"
            f"{body}</xml>").encode()


@pytest.mark.parametrize(("event", "expected"), [
    pytest.param(
        UserChange(change_type="update_user", user_id="u1", department=(1, 2)),
        WeComUser(userid="u1", department=(1, 2)), id="trimmed-ids-only"),
    pytest.param(
        UserChange(change_type="update_user", user_id="old", new_user_id="new", name="N"),
        WeComUser(userid="new", renamed_from="old", name="N"), id="new-userid-is-rename"),
    pytest.param(
        UserChange(change_type="update_user", user_id="u1", new_user_id="u1"),
        WeComUser(userid="u1"), id="same-new-userid-is-no-rename"),
    pytest.param(
        UserChange(change_type="update_user", user_id="u1", email="", gender=2, ext_attr=(
            ExtAttr(name="a", type=0, text="t"), ExtAttr(name="b", type=1, web_url="w"),
            ExtAttr(name="c", type=2, miniprogram={"Title": "m"}))),
        WeComUser(userid="u1", email="", gender=2,
                  extattr=(("a", "t"), ("b", "w"), ("c", "m"))),
        id="sent-empty-stays-empty"),
])
def test_wecom_user_from_event(event: UserChange, expected: WeComUser) -> None:
    assert WeComUser.from_event(event) == expected


def test_wecom_user_from_parsed_callback() -> None:
    event = parse_event(_event_xml(
        "<ChangeType>create_user</ChangeType><UserID>zs</UserID><Name>张三</Name>"
        "<Department>1,2</Department><MainDepartment>2</MainDepartment>"
        "<IsLeaderInDept>0,1</IsLeaderInDept><Mobile>13800000000</Mobile><Gender>1</Gender>"))
    assert isinstance(event, UserChange)
    assert WeComUser.from_event(event) == WeComUser(
        userid="zs", name="张三", department=(1, 2), main_department=2,
        is_leader_in_dept=(0, 1), mobile="13800000000", gender=1)


@pytest.mark.parametrize(("payload", "expected"), [
    ({"id": 2, "name": "研发", "name_en": "RD", "parentid": 1, "order": 10},
     WeComDepartment(id=2, name="研发", parent_id=1, order=10)),
    ({"id": 3, "parentid": 2, "order": 1}, WeComDepartment(id=3, parent_id=2, order=1)),
    ({"id": "4", "name": ""}, WeComDepartment(id=4)),
])
def test_wecom_department_from_api(payload: dict, expected: WeComDepartment) -> None:
    assert WeComDepartment.from_api(payload) == expected


@pytest.mark.parametrize(("event", "expected"), [
    (PartyChange(change_type="create_party", id=2, name="研发", parent_id=1, order=1),
     WeComDepartment(id=2, name="研发", parent_id=1, order=1)),
    (PartyChange(change_type="update_party", id=2, parent_id=5),
     WeComDepartment(id=2, parent_id=5)),
])
def test_wecom_department_from_event(event: PartyChange, expected: WeComDepartment) -> None:
    assert WeComDepartment.from_event(event) == expected


def test_wecom_department_without_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="id"):
        WeComDepartment.from_api({"name": "x"})


USER_DTO = {
    "userId": "a1", "externalId": "zs", "username": "zs", "name": "张三",
    "phone": "13800000000", "phoneCountryCode": "+86", "email": "z@example.com",
    "gender": "M", "status": "Activated", "photo": "http://p", "createdAt": "x",
    "customData": {"wechatwork_user_id": "zs", "level": 3},
    "departmentIds": ["d1", "d2"], "mainDepartmentId": "d2",
}


@pytest.mark.parametrize(("dto", "departments", "expected"), [
    pytest.param(USER_DTO, None, AuthingUser(
        user_id="a1", external_id="zs", username="zs", name="张三", phone="13800000000",
        phone_country_code="+86", email="z@example.com", gender="M", status="Activated",
        photo="http://p", custom_data=(("level", 3), ("wechatwork_user_id", "zs")),
        memberships=(AuthingMembership("d1", is_main=False),
                     AuthingMembership("d2", is_main=True)),
    ), id="with-department-ids"),
    pytest.param({"userId": "a2", "externalId": None, "email": ""}, None,
                 AuthingUser(user_id="a2"), id="bare-unknown-collections"),
    pytest.param({"userId": "a3", "departmentIds": ["d1"]}, [
        {"organizationCode": "wecom", "departmentId": "d1", "openDepartmentId": "2",
         "isLeader": True, "isMainDepartment": False, "name": "RD"},
    ], AuthingUser(user_id="a3", memberships=(
        AuthingMembership("d1", "2", "wecom", is_leader=True, is_main=False),)),
        id="get-user-departments-wins"),
])
def test_authing_user_from_dto(dto: dict, departments: list | None,
                               expected: AuthingUser) -> None:
    assert AuthingUser.from_dto(dto, departments) == expected


def test_authing_department_from_dto() -> None:
    dto = {"organizationCode": "wecom", "departmentId": "d2", "openDepartmentId": "2",
           "name": "研发", "parentDepartmentId": "root1", "membersCount": 4,
           "hasChildren": True, "customData": {"wechatwork_department_id": "2"}}
    assert AuthingDepartment.from_dto(dto) == AuthingDepartment(
        department_id="d2", open_department_id="2", name="研发", parent_department_id="root1",
        organization_code="wecom", custom_data=(("wechatwork_department_id", "2"),),
        members_count=4, has_children=True)


@pytest.mark.parametrize(("build", "dto"), [
    (AuthingUser.from_dto, {"externalId": "x"}),
    (AuthingUser.from_dto, {"userId": "a", "customData": ["x"]}),
    (AuthingDepartment.from_dto, {"name": "x"}),
    (AuthingDepartment.from_dto, {"departmentId": "d", "hasChildren": "maybe"}),
])
def test_authing_dtos_reject_bad_shapes(build, dto: dict) -> None:
    with pytest.raises(ValueError):
        build(dto)
