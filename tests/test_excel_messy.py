"""What WeCom admins really upload (issue 14): every messy-input case as a table, and the
department tree an address book builds on its own."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pytest
from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from simulators.wecom.export import ExcelLayout, export_xlsx
from simulators.wecom.state import Directory
from sync_core.authing.mapping import (
    SYNTHETIC_BASE,
    department_id_of,
    department_open_id,
    is_synthetic,
    map_user,
)
from sync_core.authing.model import AuthingDepartment, AuthingMembership, AuthingUser
from sync_core.authing.planner import plan_full
from sync_core.binding import Binding
from sync_core.directory.operations import Action, Mode
from sync_core.directory.vocabulary import Kind
from sync_core.excel.columns import parse_mobile
from sync_core.excel.source import ExcelOptions, read_address_book, read_upload
from sync_core.excel.tree import build_tree, synthetic_id
from sync_core.wecom.model import WeComDepartment, WeComUser


def _xlsx(rows: Sequence[Sequence[object]], title: str = "成员列表") -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = title
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# -- mobiles ------------------------------------------------------------------------------


@pytest.mark.parametrize(("cell", "read", "phone"), [
    ("13800000000", "13800000000", ("+86", "13800000000")),
    ("138 0000 0000", "13800000000", ("+86", "13800000000")),
    ("138-0000-0000", "13800000000", ("+86", "13800000000")),
    ("(+86) 138 0000 0000", "13800000000", ("+86", "13800000000")),
    ("（+86）138 0000 0000", "13800000000", ("+86", "13800000000")),
    ("+86 13800000000", "13800000000", ("+86", "13800000000")),
    ("+8613800000000", "13800000000", ("+86", "13800000000")),
    ("008613800000000", "13800000000", ("+86", "13800000000")),
    ("0086 138 0000 0000", "13800000000", ("+86", "13800000000")),
    (13800000000, "13800000000", ("+86", "13800000000")),  # a numeric cell
    (13800000000.0, "13800000000", ("+86", "13800000000")),
    (8613800000000, "13800000000", ("+86", "13800000000")),  # "+86..." saved as a number
    ("+852-61234567", "+852-61234567", ("+852", "61234567")),  # WeCom's own form
    ("+852 6123 4567", "+852 6123 4567", ("+852", "61234567")),
    ("(+852) 6123 4567", "+852-61234567", ("+852", "61234567")),
    ("00852 61234567", "+852-61234567", ("+852", "61234567")),
    ("+85261234567", "+85261234567", ("+852", "61234567")),
    ("+1 415 555 0100", "+1 415 555 0100", ("+1", "4155550100")),
    ("+44 7700 900123", "+44 7700 900123", ("+44", "7700900123")),
    ("  13800000000 ", "13800000000", ("+86", "13800000000")),
])
def test_mobiles_are_normalised_as_the_api_path_does(cell: object, read: str,
                                                     phone: tuple[str, str]) -> None:
    assert parse_mobile(cell) == read
    fields = dict(map_user(WeComUser(userid="u", mobile=read)).fields)
    assert (fields["phoneCountryCode"], fields["phone"]) == phone


@pytest.mark.parametrize("cell", ["1380000", "61234567", "138000000001", "+86 1380000",
                                  "tel:13800000000", "+ 852"])
def test_an_invalid_mobile_is_refused(cell: str) -> None:
    with pytest.raises(ValueError, match="not a valid mobile"):
        parse_mobile(cell)


# -- layouts and spellings ----------------------------------------------------------------


@pytest.fixture
def state() -> Directory:
    directory = Directory("测试公司")
    directory.load(
        [{"id": 2, "name": "研发部", "parentid": 1}, {"id": 3, "name": "后端组", "parentid": 2},
         {"id": 4, "name": "市场部", "parentid": 1}, {"id": 5, "name": "后端组", "parentid": 4}],
        [{"userid": "zhangsan", "name": "张三", "department": [3, 5], "mobile": "13800000000",
          "email": "zs@example.com", "gender": "1", "biz_mail": "zs@corp.example.com"},
         {"userid": "lisi", "name": "李四", "department": [1], "mobile": "+852-61234567",
          "status": 2}])
    return directory


@pytest.mark.parametrize(("layout", "header_row"), [
    (ExcelLayout.export_2026(), 9),
    (ExcelLayout.export_2026(biz_mail=True), 10),
    (ExcelLayout.template_2020(), 9),
])
def test_real_layouts_read_and_build_the_tree(state: Directory, layout: ExcelLayout,
                                              header_row: int) -> None:
    data = export_xlsx(state, layout)
    from openpyxl import load_workbook
    sheet = load_workbook(io.BytesIO(data))["成员列表"]
    assert sheet.cell(1, 1).value == "填写须知："
    assert f"A1:{get_column_letter(sheet.max_column)}1" in {
        str(r) for r in sheet.merged_cells.ranges}
    assert sheet.cell(header_row, 1).value == "姓名"
    book = read_address_book(data, "成员列表.xlsx")
    assert book.failures == () and book.complete
    assert not any("ignored columns" in w for w in book.warnings)  # every column is known
    users = {u.userid: u for u in book.users}
    assert users["zhangsan"].mobile == "13800000000"
    assert users["zhangsan"].email == "zs@example.com"
    assert dict(book.department_paths)["zhangsan"] == ("测试公司/研发部/后端组",
                                                       "测试公司/市场部/后端组")
    if "禁用状态" in layout.header():
        assert (users["lisi"].status, users["zhangsan"].status) == (2, 1)
    tree = build_tree(book.users, dict(book.department_paths), [], [], Binding())
    names = {d.id: d for d in tree.departments}
    zhangsan = next(u for u in tree.users if u.userid == "zhangsan")
    assert len(zhangsan.department or ()) == 2  # the same team name under two parents
    parents = {names[d].parent_id for d in zhangsan.department or ()}
    assert {names[p].name for p in parents} == {"研发部", "市场部"}
    assert next(u for u in tree.users if u.userid == "lisi").department == (1,)


@pytest.mark.parametrize("account", ["账号", "帐号", "英文ID", "账号 ", "帐号*"])
@pytest.mark.parametrize("separator", [";", "；", " ； "])
def test_header_spellings_separators_spaces_numbers_and_empty_rows(account: str,
                                                                   separator: str) -> None:
    data = _xlsx([["填写须知："], *([f"{n}、说明"] for n in range(1, 8)), [],
                  ["姓名", account, "部门 ", "手机", "邮箱", "禁用状态", "激活状态"],
                  ["张三 ", " zhangsan ", f"公司/研发部{separator}公司/市场部 ", 13800000000,
                   "zs@example.com ", "未禁用", "已激活"],
                  [None, None, None, None, None, None, None],
                  [],
                  ["李四", "lisi", "公司", 13800000001.0, "", "已禁用", "未激活"]])
    book = read_address_book(data, "成员列表.xlsx")
    zhangsan, lisi = book.users
    assert (zhangsan.userid, zhangsan.name, zhangsan.mobile, zhangsan.email,
            zhangsan.status) == ("zhangsan", "张三", "13800000000", "zs@example.com", 1)
    assert (lisi.mobile, lisi.status) == ("13800000001", 2)  # 禁用状态 已禁用: disabled
    assert dict(book.department_paths)["zhangsan"] == ("公司/研发部", "公司/市场部")


GB_BOM = b"\x84\x31\x95\x33"  # GB18030's byte-order mark


@pytest.mark.parametrize("encode", [
    lambda t: t.encode("utf-8"),
    lambda t: t.encode("utf-8-sig"),
    lambda t: t.encode("gb18030"),  # Excel on Chinese Windows, "CSV (逗号分隔)"
    lambda t: GB_BOM + t.encode("gb18030"),
], ids=["utf8", "utf8-bom", "gb18030", "gb18030-bom"])
def test_csv_encodings(encode: object) -> None:
    text = "姓名,帐号,手机,部门\r\n张三,zhangsan,138 0000 0000,腾讯公司/微信事业群；腾讯公司\r\n"
    book = read_address_book(encode(text), "成员列表.csv")  # type: ignore[operator]
    (user,) = book.users
    assert (user.name, user.mobile) == ("张三", "13800000000")
    assert dict(book.department_paths)["zhangsan"] == ("腾讯公司/微信事业群", "腾讯公司")


@pytest.mark.parametrize(("row", "column", "reason"), [
    (["乙", "b", "公司", "1380000"], "手机 (D)", "'1380000' is not a valid mobile"),
    (["乙", "b c", "公司", ""], "账号 (B)", "'b c' is not a valid WeCom account"),
    (["", "b", "公司", ""], "姓名 (A)", "the name is empty"),
    (["乙", "a", "公司", ""], "账号 (B)", "'a' appears again (first at row 2)"),
    (["乙", "b", "公司", "13800000000"], "手机 (D)", "'13800000000' appears again"),
])
def test_a_bad_cell_fails_its_row_and_the_rest_is_read(row: list[str], column: str,
                                                       reason: str) -> None:
    data = _xlsx([["姓名", "账号", "部门", "手机"], ["甲", "a", "公司", "13800000000"], row,
                  ["丙", "c", "公司/研发部", ""]])
    book = read_upload(data, "成员列表.xlsx")
    assert [u.userid for u in book.users] == ["a", "c"]
    (failure,) = book.failures
    assert failure.row == 3 and failure.error.startswith(f"row 3, column {column}: {reason}")
    assert failure.key == ("row 3" if row[1] == "b c" else row[1])
    with pytest.raises(ValueError, match="row 3"):  # strict reads still refuse the file
        read_address_book(data, "成员列表.xlsx")


def test_a_row_window_is_partial() -> None:
    data = _xlsx([["姓名", "账号"], ["甲", "a"], ["乙", "b"], ["丙", "c"]])
    book = read_upload(data, "b.xlsx", ExcelOptions(start_row=1, end_row=2))
    assert [u.userid for u in book.users] == ["a", "b"] and not book.complete


# -- identity of departments known only by path -------------------------------------------


def test_synthetic_ids_never_look_like_wecom_ids() -> None:
    dept_id = synthetic_id(("研发部", "后端组"))
    assert is_synthetic(dept_id) and dept_id > 2**32
    open_id = department_open_id(dept_id)
    assert open_id.startswith("excel-") and not open_id.isdigit()
    assert department_id_of(open_id) == dept_id and department_id_of("42") == 42
    assert department_id_of("excel-zz") is None and department_id_of("abc") is None
    assert synthetic_id(("研发部",)) == synthetic_id(("研发部",))  # stable
    assert synthetic_id(("研发部",), taken={synthetic_id(("研发部",))}) != synthetic_id(
        ("研发部",))
    assert SYNTHETIC_BASE > 2**32


ROOT = "root-id"
POLICY = Binding(root_department_id=ROOT)


def _ours(name: str, key: int | str, parent: str = ROOT, **custom: str) -> AuthingDepartment:
    open_id = key if isinstance(key, str) else department_open_id(key)
    return AuthingDepartment(department_id=f"d-{name}-{open_id}", open_department_id=open_id,
                             name=name, parent_department_id=parent, organization_code="wecom",
                             custom_data=tuple(custom.items()))


def _member(userid: str, *depts: AuthingDepartment) -> AuthingUser:
    return AuthingUser(user_id=f"u-{userid}", external_id=userid, memberships=tuple(
        AuthingMembership(department_id=d.department_id, open_department_id=d.open_department_id,
                          organization_code="wecom", is_leader=False, is_main=n == 0)
        for n, d in enumerate(depts)))


def _users(*ids: str) -> list[WeComUser]:
    return [WeComUser(userid=u, name=u) for u in ids]


def test_paths_found_in_authing_keep_their_identity_whatever_it_is() -> None:
    real = _ours("研发部", "7")  # from an earlier API sync
    team = _ours("后端组", synthetic_id(("研发部", "后端组")), parent=real.department_id)
    tree = build_tree(_users("a"), {"a": ["公司/研发部/后端组"]}, [real, team], [], POLICY)
    ids = {d.name: d.id for d in tree.departments}
    assert ids["研发部"] == 7 and ids["后端组"] == department_id_of(team.open_department_id)


def test_a_renamed_or_moved_department_is_recognised_by_its_members() -> None:
    dev = _ours("研发部", synthetic_id(("研发部",)))
    sales = _ours("市场部", synthetic_id(("市场部",)))
    front = _ours("前端组", synthetic_id(("研发部", "前端组")), parent=dev.department_id)
    people = [_member("a", front), _member("b", front), _member("c", dev), _member("d", sales)]
    paths = {"a": ["公司/市场部/前端"], "b": ["公司/市场部/前端"], "c": ["公司/研发部"],
             "d": ["公司/市场部"]}
    tree = build_tree(_users(*paths), paths, [dev, sales, front], people, POLICY)
    moved = next(d for d in tree.departments if d.name == "前端")
    assert department_open_id(moved.id) == front.open_department_id
    assert moved.parent_id == department_id_of(sales.open_department_id)
    assert tree.renamed == (("研发部/前端组", "市场部/前端"),)
    ops = plan_full(tree.users, tree.departments, people, [dev, sales, front], POLICY,
                    mode=Mode.FULL)
    kinds = {(o.kind, o.action) for o in ops if o.key == front.open_department_id}
    assert kinds == {(Kind.DEPARTMENT, Action.MOVE)}
    assert not any(o.action is Action.DELETE for o in ops)


def test_a_container_is_recognised_by_its_children_and_weak_evidence_is_not_enough() -> None:
    dev = _ours("研发部", synthetic_id(("研发部",)))
    team = _ours("后端组", synthetic_id(("研发部", "后端组")), parent=dev.department_id)
    people = [_member("a", team), _member("b", team)]
    paths = {"a": ["公司/研发中心/后端组"], "b": ["公司/研发中心/后端组"]}
    tree = build_tree(_users("a", "b"), paths, [dev, team], people, POLICY)
    names = {d.name: department_open_id(d.id) for d in tree.departments}
    assert names["研发中心"] == dev.open_department_id  # renamed, by its child
    assert names["后端组"] == team.open_department_id
    # One member of four moving along is a new department, not a rename.
    paths = {"a": ["公司/研发中心/新组"], "b": ["公司/研发中心/后端组"]}
    people = [_member(u, team) for u in "abcd"]
    tree = build_tree(_users("a", "b"), paths, [dev, team], people, POLICY)
    new = next(d for d in tree.departments if d.name == "新组")
    assert department_open_id(new.id) != team.open_department_id


def test_top_department_options_and_several_tops() -> None:
    paths = {"a": ["公司/研发部"], "b": ["公司"]}
    kept = build_tree(_users("a", "b"), paths, [], [], POLICY, keep_top=True)
    assert [d.name for d in kept.departments[1:]] == ["公司", "研发部"]
    assert next(u for u in kept.users if u.userid == "b").department != (1,)
    dropped = build_tree(_users("a", "b"), paths, [], [], POLICY)
    assert next(u for u in dropped.users if u.userid == "b").department == (1,)
    several = build_tree(_users("a", "b"), {"a": ["甲公司/x"], "b": ["乙公司/y"]}, [], [],
                         POLICY)
    assert any("2 different top departments" in n for n in several.notes)


def test_the_planner_rekeys_a_synthetic_department_to_wecom_s_id_by_path() -> None:
    dev = _ours("研发部", synthetic_id(("研发部",)))
    source = [WeComDepartment(1, "公司", 0), WeComDepartment(9, "研发部", 1)]
    users = [WeComUser(userid="a", name="a", department=(9,))]
    people = [_member("a", dev)]
    ops = plan_full(users, source, people, [dev], POLICY)
    (dept_op,) = [o for o in ops if o.kind is Kind.DEPARTMENT]
    assert (dept_op.key, dept_op.action, dept_op.target) == ("9", Action.UPDATE,
                                                             dev.department_id)
    body = dept_op.requests[0].body
    assert body["customData"]["wechatwork_department_id"] == "9"
    assert "openDepartmentId" not in body  # Authing cannot change it after creation
    user_ops = [o for o in ops if o.kind is Kind.USER]  # the membership stands as it is
    assert not any(c.field == "departments" for o in user_ops for c in o.changes), user_ops
    linked = AuthingDepartment(department_id=dev.department_id,
                               open_department_id=dev.open_department_id, name="研发部",
                               parent_department_id=ROOT, organization_code="wecom",
                               custom_data=(("wechatwork_department_id", "9"),
                                            ("wechatwork_parent_department_id", "1")))
    again = plan_full(users, source, people, [linked], POLICY)
    assert [o.action for o in again if o.kind is Kind.DEPARTMENT] == [Action.UNCHANGED]
    assert not any(c.field == "departments" for o in again for c in o.changes)


def test_ids_written_as_digits_beside_paths_are_kept() -> None:
    tree = build_tree(_users("a"), {"a": ["公司/研发部", "7"]}, [], [], POLICY)
    (user,) = tree.users
    assert user.department is not None and user.department[1] == 7
    assert is_synthetic(user.department[0]) and user.main_department == user.department[0]


def test_the_openpyxl_reader_reads_the_same(state: Directory,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_core.excel import source as excel_source

    data = export_xlsx(state, ExcelLayout.export_2026(biz_mail=True))
    fast = read_address_book(data, "成员列表.xlsx")
    monkeypatch.setattr(excel_source, "CalamineWorkbook", None)
    assert excel_source.reader_name() == "openpyxl"
    assert read_address_book(data, "成员列表.xlsx") == fast
    shifted = _xlsx([[None, None, "姓名", "账号"], [None, None, "甲", "a b"]])
    monkeypatch.undo()
    for reader in ("openpyxl", "python-calamine"):  # letters as the spreadsheet shows
        rows = excel_source.UserRows(excel_source.DepartmentResolver(None), lenient=True)
        excel_source._read_workbook(shifted, "s.xlsx", ExcelOptions(), rows, reader=reader)
        assert rows.failures[0].error.startswith("row 2, column 账号 (D)"), reader
