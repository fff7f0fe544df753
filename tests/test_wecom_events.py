"""Parsing decrypted WeCom messages into typed events (reference §2)."""

from __future__ import annotations

import pytest

from sync_core.directory.vocabulary import Kind
from sync_core.http.documents import MalformedDocument
from sync_core.wecom.events import (
    BatchJobResult,
    OtherMessage,
    PartyChange,
    SuiteCommand,
    TagChange,
    UserChange,
    dedupe_key,
    parse_event,
    to_payload,
)

HEAD = ("<xml><ToUserName><![CDATA[wwcorp]]></ToUserName>"
        "<FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1403610513</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>")

FULL_CREATE_USER = HEAD + """
<ChangeType>create_user</ChangeType>
<UserID><![CDATA[zhangsan]]></UserID>
<Name><![CDATA[张三]]></Name>
<Department><![CDATA[1,2,3]]></Department>
<MainDepartment>1</MainDepartment>
<IsLeaderInDept><![CDATA[1,0,0]]></IsLeaderInDept>
<DirectLeader><![CDATA[lisi,wangwu]]></DirectLeader>
<Position><![CDATA[产品经理]]></Position>
<Mobile>13800000000</Mobile>
<Gender>1</Gender>
<Email><![CDATA[zhangsan@gzdev.com]]></Email>
<BizMail><![CDATA[zhangsan@qyycs2.wecom.work]]></BizMail>
<Status>1</Status>
<Avatar><![CDATA[http://wx.qlogo.cn/mmopen/x/0]]></Avatar>
<Alias><![CDATA[zhangsan]]></Alias>
<Telephone><![CDATA[020-123456]]></Telephone>
<Address><![CDATA[广州市]]></Address>
<ExtAttr>
  <Item><Name><![CDATA[爱好]]></Name><Type>0</Type><Text><Value><![CDATA[旅游]]></Value></Text></Item>
  <Item><Name><![CDATA[卡号]]></Name><Type>1</Type><Web><Title><![CDATA[企业微信]]></Title><Url><![CDATA[https://work.weixin.qq.com]]></Url></Web></Item>
</ExtAttr>
</xml>"""


def test_full_create_user_has_every_field() -> None:
    event = parse_event(FULL_CREATE_USER.encode())
    assert isinstance(event, UserChange)
    assert event.kind is Kind.USER and event.entity_key == "zhangsan"
    assert event.change_type == "create_user"
    assert event.name == "张三"
    assert event.department == (1, 2, 3) and event.main_department == 1
    assert event.is_leader_in_dept == (1, 0, 0)
    assert event.direct_leader == ("lisi", "wangwu")
    assert event.position == "产品经理" and event.mobile == "13800000000"
    assert event.gender == 1 and event.status == 1
    assert event.email == "zhangsan@gzdev.com" and event.biz_mail.endswith("wecom.work")
    assert event.avatar.endswith("/0") and event.alias == "zhangsan"
    assert event.telephone == "020-123456" and event.address == "广州市"
    assert event.ext_attr is not None and len(event.ext_attr) == 2
    assert event.ext_attr[0].name == "爱好" and event.ext_attr[0].text == "旅游"
    assert event.ext_attr[1].web_url == "https://work.weixin.qq.com"
    assert event.header.create_time == 1403610513 and event.header.from_user_name == "sys"


def test_trimmed_user_event_leaves_unsent_fields_unknown() -> None:
    xml = HEAD + ("<ChangeType>update_user</ChangeType><UserID><![CDATA[zhangsan]]></UserID>"
                  "<Department><![CDATA[1]]></Department></xml>")
    event = parse_event(xml.encode())
    assert isinstance(event, UserChange)
    assert event.department == (1,)
    assert event.name is None and event.mobile is None and event.email is None
    payload = to_payload(event)
    # Unsent fields are absent from the stored payload, never null/"" (which would read
    # as "cleared").
    assert "name" not in payload and "mobile" not in payload
    assert payload["user_id"] == "zhangsan" and payload["department"] == [1]


def test_update_user_rename() -> None:
    xml = HEAD + ("<ChangeType>update_user</ChangeType><UserID><![CDATA[zhangsan]]></UserID>"
                  "<NewUserID><![CDATA[zhangsan001]]></NewUserID></xml>")
    event = parse_event(xml.encode())
    assert isinstance(event, UserChange)
    assert event.user_id == "zhangsan" and event.new_user_id == "zhangsan001"


def test_delete_user() -> None:
    event = parse_event((HEAD + "<ChangeType>delete_user</ChangeType>"
                         "<UserID><![CDATA[lisi]]></UserID></xml>").encode())
    assert isinstance(event, UserChange) and event.change_type == "delete_user"
    assert event.entity_key == "lisi"


@pytest.mark.parametrize("xml, expected", [
    ("<ChangeType>create_party</ChangeType><Id>2</Id><Name><![CDATA[研发部]]></Name>"
     "<ParentId><![CDATA[1]]></ParentId><Order>1</Order>",
     PartyChange("create_party", 2, "研发部", 1, 1)),
    ("<ChangeType>update_party</ChangeType><Id>2</Id><Name><![CDATA[产品部]]></Name>"
     "<ParentId>1</ParentId>", PartyChange("update_party", 2, "产品部", 1)),
    ("<ChangeType>update_party</ChangeType><Id>2</Id><ParentId>5</ParentId>",
     PartyChange("update_party", 2, None, 5)),
    ("<ChangeType>delete_party</ChangeType><Id>2</Id>", PartyChange("delete_party", 2)),
])
def test_party_events(xml: str, expected: PartyChange) -> None:
    event = parse_event((HEAD + xml + "</xml>").encode())
    assert isinstance(event, PartyChange)
    assert (event.change_type, event.id, event.name, event.parent_id, event.order) == (
        expected.change_type, expected.id, expected.name, expected.parent_id, expected.order)
    assert event.entity_key == str(expected.id) and event.kind is Kind.DEPARTMENT


def test_update_tag() -> None:
    xml = HEAD + ("<ChangeType><![CDATA[update_tag]]></ChangeType><TagId>1</TagId>"
                  "<AddUserItems><![CDATA[zhangsan,lisi]]></AddUserItems>"
                  "<DelUserItems><![CDATA[zhangsan1,lisi1]]></DelUserItems>"
                  "<AddPartyItems><![CDATA[1,2]]></AddPartyItems>"
                  "<DelPartyItems><![CDATA[3,4]]></DelPartyItems></xml>")
    event = parse_event(xml.encode())
    assert isinstance(event, TagChange)
    assert event.add_user_items == ("zhangsan", "lisi") and event.del_party_items == (3, 4)
    assert event.kind is Kind.TAG and event.entity_key == "1"


def test_batch_job_result() -> None:
    xml = ("<xml><ToUserName><![CDATA[wx28dbb14e3720FAKE]]></ToUserName>"
           "<FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>1425284517</CreateTime>"
           "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[batch_job_result]]></Event>"
           "<BatchJob><JobId><![CDATA[S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4]]></JobId>"
           "<JobType><![CDATA[sync_user]]></JobType><ErrCode>0</ErrCode>"
           "<ErrMsg><![CDATA[ok]]></ErrMsg></BatchJob></xml>")
    event = parse_event(xml.encode())
    assert isinstance(event, BatchJobResult)
    assert event.job_type == "sync_user" and event.err_code == 0
    assert event.kind is Kind.JOB and event.entity_key.startswith("S0Mrnn")


@pytest.mark.parametrize("info_type, extra", [
    ("suite_ticket", "<SuiteTicket><![CDATA[asdfasfdasdfasdf]]></SuiteTicket>"),
    ("create_auth", "<AuthCode><![CDATA[AUTHCODE]]></AuthCode><State><![CDATA[123]]></State>"
                    "<ExtraInfo></ExtraInfo>"),
    ("change_auth", "<AuthCorpId><![CDATA[wxf8b4f85f3a]]></AuthCorpId>"),
    ("cancel_auth", "<AuthCorpId><![CDATA[wxf8b4f85f3a]]></AuthCorpId>"),
    ("reset_permanent_code", "<AuthCode><![CDATA[AUTHCODE]]></AuthCode>"),
])
def test_suite_commands(info_type: str, extra: str) -> None:
    xml = (f"<xml><SuiteId><![CDATA[ww4asffe99e54c0fxxxx]]></SuiteId>"
           f"<InfoType> <![CDATA[{info_type}]]></InfoType><TimeStamp>1403610513</TimeStamp>"
           f"{extra}</xml>")
    event = parse_event(xml.encode())
    assert isinstance(event, SuiteCommand)
    assert event.info_type == info_type and event.change_type == info_type
    assert event.kind is Kind.SUITE and event.entity_key == "ww4asffe99e54c0fxxxx"
    assert event.header.timestamp == 1403610513


def test_third_party_change_contact_variant() -> None:
    xml = ("<xml><SuiteId><![CDATA[ww4asffe99e54c0f4c]]></SuiteId>"
           "<AuthCorpId><![CDATA[wxf8b4f85f3axxxxxx]]></AuthCorpId>"
           "<InfoType><![CDATA[change_contact]]></InfoType><TimeStamp>1403610513</TimeStamp>"
           "<ChangeType><![CDATA[create_user]]></ChangeType>"
           "<UserID><![CDATA[zhangsan]]></UserID><OpenUserID><![CDATA[woxxx]]></OpenUserID>"
           "</xml>")
    event = parse_event(xml.encode())
    assert isinstance(event, UserChange) and event.open_user_id == "woxxx"
    assert event.header.auth_corp_id == "wxf8b4f85f3axxxxxx"


def test_text_message_is_kept_as_other() -> None:
    event = parse_event("<xml><MsgType>text</MsgType><Content>你好</Content></xml>".encode())
    assert isinstance(event, OtherMessage) and event.kind is Kind.OTHER
    assert event.change_type == "text"


def test_json_message_variant() -> None:
    body = ('{"ToUserName":"wwcorp","MsgType":"event","Event":"change_contact",'
            '"ChangeType":"create_party","Id":"7","ParentId":"1","Name":"销售部"}')
    event = parse_event(body.encode())
    assert isinstance(event, PartyChange) and event.id == 7 and event.name == "销售部"


@pytest.mark.parametrize("body", [
    b"<xml><ChangeType>create_user</ChangeType>",  # truncated
    b"not xml",
    (HEAD + "<ChangeType>create_party</ChangeType><Id>abc</Id></xml>").encode(),
    (HEAD + "<ChangeType>create_user</ChangeType></xml>").encode(),  # no UserID
    (HEAD + "<ChangeType>update_user</ChangeType><UserID>a</UserID>"
            "<Department>1,x</Department></xml>").encode(),
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><xml>&a;</xml>',
    b"\xff\xfe<xml/>",
])
def test_malformed_messages(body: bytes) -> None:
    with pytest.raises(MalformedDocument):
        parse_event(body)


def test_dedupe_key_is_stable_per_message() -> None:
    a = FULL_CREATE_USER.encode()
    assert dedupe_key(a) == dedupe_key(bytes(a))
    assert dedupe_key(a) != dedupe_key(a.replace(b"1403610513", b"1403610514"))


@pytest.mark.parametrize("xml", [
    FULL_CREATE_USER,
    HEAD + "<ChangeType>update_user</ChangeType><UserID>a</UserID><NewUserID>b</NewUserID></xml>",
    HEAD + "<ChangeType>update_party</ChangeType><Id>4</Id><ParentId>2</ParentId></xml>",
])
def test_payload_round_trips_to_the_same_event(xml: str) -> None:
    from dataclasses import replace

    from sync_core.wecom.events import Header, change_from_payload

    event = parse_event(xml.encode())
    rebuilt = change_from_payload(to_payload(event))
    assert rebuilt == replace(event, header=Header())  # type: ignore[type-var]
