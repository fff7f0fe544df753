"""The Excel/CSV source: the simulator's exports read back, options, variants, errors, merge."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from simulators.generate import generate_directory
from simulators.wecom import ExcelLayout, export_xlsx
from simulators.wecom.export import export_department_csv, export_user_csv
from simulators.wecom.model import User
from simulators.wecom.state import Directory
from sync_core.excel.columns import column_letter, normalize_header, parse_mobile
from sync_core.excel.source import (
    AddressBook,
    ExcelOptions,
    ExcelSourceError,
    merge_sources,
    read_address_book,
    read_department_csv,
)
from sync_core.wecom.model import WeComDepartment, WeComUser

HEADER = ["姓名", "账号", "别名", "职务", "部门", "性别", "手机", "座机", "个人邮箱", "企业邮箱",
          "地址", "激活状态", "禁用状态"]
TREE = (WeComDepartment(1, "测试公司", 0), WeComDepartment(2, "研发部", 1),
        WeComDepartment(3, "后端组", 2), WeComDepartment(4, "市场部", 1))


@pytest.fixture
def directory() -> Directory:
    state = Directory("测试公司")
    state.load(
        [{"id": 2, "name": "研发部", "parentid": 1}, {"id": 3, "name": "后端组", "parentid": 2},
         {"id": 4, "name": "市场部", "parentid": 1}],
        [{"userid": "zhangsan", "name": "张三", "department": [3, 1], "mobile": "13800000000",
          "email": "zs@example.com", "gender": "1", "position": "工程师",
          "is_leader_in_dept": [1, 0], "alias": "Zhang", "telephone": "010-1234",
          "biz_mail": "zs@corp.example.com", "address": "北京", "status": 1},
         {"userid": "lisi", "name": "李四", "department": [2], "email": "ls@example.com",
          "gender": "2", "status": 2},
         {"userid": "wangwu", "name": "王五", "department": [4], "mobile": "+852-61234567",
          "status": 4}])
    return state


def _tree(state: Directory) -> tuple[WeComDepartment, ...]:
    return tuple(WeComDepartment.from_api(row) for row in state.department_list())


def _xlsx(*sheets: tuple[str, Sequence[Sequence[object]]]) -> bytes:
    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _by_id(snapshot: AddressBook) -> dict[str, WeComUser]:
    return {u.userid: u for u in snapshot.users}


def _error(data: bytes, filename: str = "book.xlsx", **kwargs: object) -> ExcelSourceError:
    with pytest.raises(ExcelSourceError) as caught:
        read_address_book(data, filename, **kwargs)  # type: ignore[arg-type]
    return caught.value


# -- round trips with the simulator's exporter ----------------------------------------------


@pytest.mark.parametrize("layout", [ExcelLayout(), ExcelLayout(title_row=False,
                                                               account_header="帐号")])
def test_exported_xlsx_reads_back_with_the_tree(directory: Directory,
                                                layout: ExcelLayout) -> None:
    snapshot = read_address_book(export_xlsx(directory, layout), "通讯录.xlsx",
                                 departments=_tree(directory))
    users = _by_id(snapshot)
    assert users["zhangsan"] == WeComUser(
        userid="zhangsan", name="张三", department=(3, 1), position="工程师",
        mobile="13800000000", gender=1, email="zs@example.com", biz_mail="zs@corp.example.com",
        status=1, alias="Zhang", telephone="010-1234", address="北京")
    assert (users["lisi"].status, users["lisi"].gender, users["lisi"].mobile) == (2, 2, "")
    assert (users["wangwu"].status, users["wangwu"].mobile) == (4, "+852-61234567")
    assert users["wangwu"].gender is None  # exported blank: unknown, never "cleared"
    assert snapshot.departments == _tree(directory)
    assert snapshot.complete and snapshot.warnings == () and snapshot.department_paths == ()


def test_without_a_tree_paths_stay_unresolved_and_ids_are_never_invented(
        directory: Directory) -> None:
    snapshot = read_address_book(export_xlsx(directory), "book.xlsx")
    assert snapshot.departments is None
    assert all(u.department is None and u.is_leader_in_dept is None for u in snapshot.users)
    assert dict(snapshot.department_paths)["zhangsan"] == ("测试公司/研发部/后端组", "测试公司")
    assert any("no department tree" in w for w in snapshot.warnings)
    assert _by_id(snapshot)["zhangsan"].name == "张三"  # attributes are still read


def test_user_and_department_csv_templates_read_back(directory: Directory) -> None:
    tree = read_department_csv(export_department_csv(directory).encode())
    assert {d.id: (d.name, d.parent_id) for d in tree} == {
        1: ("测试公司", 0), 2: ("研发部", 1), 3: ("后端组", 2), 4: ("市场部", 1)}
    snapshot = read_address_book(export_user_csv(directory).encode(), "users.csv",
                                 departments=tree)
    users = _by_id(snapshot)
    zhang = users["zhangsan"]
    assert (zhang.department, zhang.is_leader_in_dept, zhang.gender) == ((3, 1), (1, 0), 1)
    assert zhang.biz_mail is None  # the template has no 企业邮箱: unknown
    assert zhang.status is None  # 禁用=0 says enabled, not whether activated
    assert users["lisi"].status == 2
    # The template holds ids, which stand without a tree.
    assert _by_id(read_address_book(export_user_csv(directory).encode(), "users.csv")
                  )["zhangsan"].department == (3, 1)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000))
def test_any_generated_directory_round_trips(seed: int) -> None:
    generated = generate_directory(users=40, departments=12, seed=seed, max_depth=5,
                                   multi_department_ratio=0.3)
    state = Directory(generated.corp_name)
    state.load(generated.departments, generated.users)
    snapshot = read_address_book(export_xlsx(state), "book.xlsx", departments=_tree(state))
    read = _by_id(snapshot)
    for user in state.users:
        assert _expected(user) == read[user.userid]


def _expected(user: User) -> WeComUser:
    return WeComUser(
        userid=user.userid, name=user.name, department=tuple(user.department),
        position=user.position, mobile=user.mobile, gender=int(user.gender) or None,
        email=user.email, biz_mail=user.biz_mail, status=user.status, alias=user.alias,
        telephone=user.telephone, address=user.address)


# -- variants -------------------------------------------------------------------------------


def test_header_found_after_title_rows_and_columns_in_any_order() -> None:
    header = ["禁用状态", "手机号 *", "部门", "UserID", "姓名（必填）", "性别", "邮箱", "职位"]
    data = _xlsx(("Sheet1", [["测试公司通讯录"], [], ["导出时间：2024-01-01"], header,
                             ["正常", 13800000001, "测试公司/研发部;市场部", "a1", "甲", "女",
                              "a1@example.com", "经理"]]))
    user = read_address_book(data, "book.xlsx", departments=TREE).users[0]
    assert (user.userid, user.name, user.mobile, user.gender) == ("a1", "甲", "13800000001", 2)
    assert (user.department, user.position, user.status) == ((2, 4), "经理", None)


def test_gb18030_bom_utf16_and_tab_separated_csv() -> None:
    text = "姓名,帐号,手机号,所在部门,性别\n张三,zhangsan,13800000000,2；4,男\n"
    for data in (text.encode("gb18030"), text.encode("utf-8-sig"), text.encode("utf-16"),
                 text.replace(",", "\t").encode("utf-8")):
        user = read_address_book(data, "u.csv").users[0]
        assert (user.name, user.department, user.gender) == ("张三", (2, 4), 1)


def test_sheet_and_row_options() -> None:
    rows = [["说明：请勿修改表头"], HEADER[:2], ["甲", "a"], ["乙", "b"], ["丙", "c"], ["丁", "d"]]
    data = _xlsx(("说明", [["本文件为通讯录导出"]]), ("通讯录", rows), ("其他", rows[1:3]))
    for sheet in (1, "通讯录", "1"):
        snapshot = read_address_book(data, "book.xlsx", ExcelOptions(sheet=sheet))
        assert [u.userid for u in snapshot.users] == ["a", "b", "c", "d"]
        assert snapshot.complete
    window = read_address_book(data, "book.xlsx", ExcelOptions(sheet=1, start_row=3, end_row=4))
    assert [u.userid for u in window.users] == ["b", "c"]
    assert not window.complete and any("partial" in w for w in window.warnings)
    tail = read_address_book(data, "book.xlsx", ExcelOptions(sheet="通讯录", start_row=4))
    assert [u.userid for u in tail.users] == ["c", "d"] and not tail.complete
    same = read_address_book(data, "book.xlsx", ExcelOptions(sheet=1, start_row=0, end_row=-1))
    assert same.complete and len(same.users) == 4
    with pytest.raises(ValueError, match="before start_row"):
        ExcelOptions(start_row=5, end_row=3)


def test_all_sheets_skip_those_without_a_header_and_share_uniqueness() -> None:
    data = _xlsx(("说明", [["本文件为通讯录导出"]]), ("一部", [HEADER[:2], ["甲", "a"]]),
                 ("二部", [HEADER[:2], ["乙", "b"]]))
    snapshot = read_address_book(data, "book.xlsx")
    assert [u.userid for u in snapshot.users] == ["a", "b"]
    assert any("'说明' skipped" in w for w in snapshot.warnings)
    repeated = _xlsx(("一部", [HEADER[:2], ["甲", "a"]]), ("二部", [HEADER[:2], [], ["乙", "A"]]))
    error = _error(repeated)
    assert str(error) == ("sheet '二部', row 3, column 账号 (B): 'A' appears again "
                          "(first at sheet '一部' row 2)")


def test_unknown_columns_are_warned_and_repeated_headers_skipped() -> None:
    data = _xlsx(("Sheet", [HEADER[:2] + ["工号", "电话"], ["甲", "a", "007", "123"],
                            HEADER[:2], ["乙", "b"]]))
    snapshot = read_address_book(data, "book.xlsx")
    assert [u.userid for u in snapshot.users] == ["a", "b"]
    assert snapshot.warnings == ("ignored columns not known to the sync: 工号 (C), 电话 (D)",)


def test_masked_contacts_are_unknown_and_one_status_column_is_read() -> None:
    data = _xlsx(("S", [["姓名", "账号", "手机", "邮箱", "状态"],
                        ["甲", "a", "138****0000", "a***@example.com", "已退出"],
                        ["乙", "b", "138****0000", "", "2"]]))
    snapshot = read_address_book(data, "book.xlsx")
    a, b = snapshot.users
    assert (a.mobile, a.email, a.status) == (None, None, 5)
    assert (b.mobile, b.email, b.status) == (None, "", 2)
    assert "3 masked mobiles or emails (with '*') were read as unknown" in snapshot.warnings


def test_paths_resolve_below_the_root_and_with_slashes_in_names() -> None:
    tree = (*TREE, WeComDepartment(5, "研发/测试", 2), WeComDepartment(6, "测试", 5))
    data = _xlsx(("S", [["姓名", "账号", "部门"],
                        ["甲", "a", "研发部/后端组"],
                        ["乙", "b", " 测试公司 / 研发部 / 研发/测试 / 测试 "],
                        ["丙", "c", "测试公司"],
                        ["丁", "d", "3"]]))
    users = _by_id(read_address_book(data, "book.xlsx", departments=tree))
    assert [users[k].department for k in "abcd"] == [(3,), (6,), (1,), (3,)]


# -- errors ---------------------------------------------------------------------------------


def test_a_bad_cell_names_row_and_column() -> None:
    data = _xlsx(("S", [["通讯录"], HEADER, ["甲", "a", "", "", "测试公司", "男", "1380000"]]))
    error = _error(data)
    assert str(error) == "row 3, column 手机 (G): '1380000' is not a valid mobile"
    assert (error.row, error.column, error.letter, error.sheet) == (3, "手机", "G", None)


@pytest.mark.parametrize(("row", "message"), [
    (["甲", "a", "x", "y", "测试公司", "不详"], "column 性别 (F): '不详' is not a gender"),
    (["甲", "a b"], "column 账号 (B): 'a b' is not a valid WeCom account"),
    (["", "a"], "column 姓名 (A): the name is empty"),
    (["甲", ""], "column 账号 (B): the account is empty"),
    (["甲", "a", "", "", "测试公司/不存在"],
     "column 部门 (E): unknown department path '测试公司/不存在'"),
    (["甲", "a", "", "", "99"], "column 部门 (E): unknown department id 99"),
    (["甲", "a", "", "", "研发部;2"], "column 部门 (E): a department is listed twice"),
    (["甲", "a"] + [""] * 6 + ["x@"], "column 个人邮箱 (I): 'x@' is not a valid email"),
    (["甲", "a"] + [""] * 9 + ["在职"], "column 激活状态 (L): '在职' is not an activation"),
    (["甲", "a"] + [""] * 10 + ["冻结"], "column 禁用状态 (M): '冻结' is not a disabled flag"),
])
def test_malformed_cells(row: list[str], message: str) -> None:
    error = _error(_xlsx(("S", [HEADER, row])), departments=TREE)
    assert str(error).startswith(f"row 2, {message}")


def test_duplicates_within_a_file() -> None:
    base = ["甲", "a", "", "", "测试公司", "", "13800000000"]
    error = _error(_xlsx(("S", [HEADER, base, ["乙", "b", "", "", "测试公司", "", "13800000000"]])))
    assert str(error) == "row 3, column 手机 (G): '13800000000' appears again (first at row 2)"
    error = _error(_xlsx(("S", [HEADER, base, ["乙", "A"]])))
    assert str(error) == "row 3, column 账号 (B): 'A' appears again (first at row 2)"


def test_header_problems() -> None:
    error = _error(_xlsx(("S", [["标题"], ["姓名", "工号", "手机"], ["甲", "a", "13800000000"]])))
    assert str(error) == ("row 2: missing required column 账号 (or 帐号) "
                          "(the header row has 姓名, 手机)")
    error = _error(_xlsx(("S", [["只有一列"], ["甲"]])))
    assert "no header row" in str(error)
    error = _error(_xlsx(("S", [["姓名", "账号", "手机", "手机号"]])))
    assert str(error) == "row 1: columns 手机 (C) and 手机号 (D) both give mobile"


def test_csv_errors_name_row_and_column() -> None:
    text = "姓名,帐号,所在部门,是否部门内领导\n甲,a,2;4,1;0\n乙,b,2;4,1;0;1\n"
    error = _error(text.encode(), "u.csv")
    assert str(error) == "row 3, column 是否部门内领导 (D): 3 leader flags for 2 departments"
    department_csv = "部门名称,部门ID,父部门ID,排序\n测试公司,1,0,1\n".encode()
    assert "read_department_csv" in str(_error(department_csv, "u.csv"))


def test_department_csv_errors() -> None:
    def error(text: str) -> str:
        with pytest.raises(ExcelSourceError) as caught:
            read_department_csv(text.encode())
        return str(caught.value)

    head = "部门名称,部门ID,父部门ID,排序\n"
    assert error(head + "公司,1,0,1\n研发,1,1,2\n") == (
        "row 3, column 部门ID (B): department 1 appears again (first at row 2)")
    assert error(head + "公司,1,0,1\n研发,2,9,2\n") == (
        "row 3, column 父部门ID (C): parent department 9 is not in the file")
    assert error(head + "公司,1,0,1\n甲,2,3,1\n乙,3,2,1\n") == (
        "row 3, column 父部门ID (C): department 2 is its own ancestor (the parents loop)")
    assert error(head + "公司,x,0,1\n") == "row 2, column 部门ID (B): 'x' is not a department id"
    assert error("部门名称,部门ID\n公司,1\n") == "row 1: missing required column 父部门ID"


@pytest.mark.parametrize(("data", "filename", "message"), [
    (b"", "book.xlsx", "book.xlsx: the file is empty"),
    (b"\xd0\xcf\x11\xe0rest", "book.xls", "legacy .xls workbooks are not supported"),
    (b"\xd0\xcf\x11\xe0rest", "book.xlsx", "a legacy .xls workbook or a password-protected"),
    (b"name,userid\n", "book.xlsx", "not an .xlsx file (no zip signature)"),
    (b"PK\x03\x04garbage", "book.xlsx", "book.xlsx: unreadable workbook"),
    (b"PK\x03\x04garbage", "book.csv", "named .csv but holds a workbook"),
    (b"a,b\n", "book.txt", "unsupported file type '.txt'"),
    (b"\x00\x01\x02", "book.csv", "not a text file"),
])
def test_wrong_or_corrupt_files(data: bytes, filename: str, message: str) -> None:
    assert message in str(_error(data, filename))


def test_a_zip_that_is_not_a_workbook_is_unreadable() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    assert "unreadable workbook" in str(_error(buffer.getvalue()))


def test_missing_sheet() -> None:
    data = _xlsx(("通讯录", [HEADER[:2]]))
    assert "no sheet named '花名册' (sheets: 通讯录)" in str(
        _error(data, options=ExcelOptions(sheet="花名册")))
    assert "no sheet 3" in str(_error(data, options=ExcelOptions(sheet=3)))
    assert "one sheet" in str(_error(b"a,b\n", "u.csv", options=ExcelOptions(sheet=2)))


# -- merge ----------------------------------------------------------------------------------


def test_merge_takes_structure_from_the_api_and_attributes_from_the_excel(
        directory: Directory) -> None:
    excel = read_address_book(export_xlsx(directory), "book.xlsx").users  # no tree: paths only
    api = (WeComUser(userid="ZhangSan", department=(3, 1), main_department=3,
                     is_leader_in_dept=(1, 0), open_userid="wo1"),
           WeComUser(userid="lisi", department=(2,), name="李四（旧）", position="旧职务"),
           WeComUser(userid="zhaoliu", department=(4,), name="赵六"))
    merged = merge_sources(api, TREE, excel)
    assert [u.userid for u in merged] == ["ZhangSan", "lisi", "zhaoliu"]  # wangwu: not in API
    zhang, li, zhao = merged
    assert (zhang.department, zhang.main_department, zhang.is_leader_in_dept) == (
        (3, 1), 3, (1, 0))
    assert (zhang.name, zhang.mobile, zhang.status, zhang.open_userid) == (
        "张三", "13800000000", 1, "wo1")
    assert (li.name, li.position, li.status) == ("李四", "", 2)
    assert zhao == api[2]


def test_merge_fills_unknown_structure_only_from_known_departments() -> None:
    excel = (WeComUser(userid="a", department=(2, 3), is_leader_in_dept=(0, 1), name="甲"),
             WeComUser(userid="b", department=(99,), name="乙"))
    api = (WeComUser(userid="a", department=(3, 2)), WeComUser(userid="b"))
    a, b = merge_sources(api, TREE, excel)
    assert (a.department, a.is_leader_in_dept, a.name) == ((3, 2), (1, 0), "甲")
    assert (b.department, b.name) == (None, "乙")  # 99 is no department the API knows
    with pytest.raises(ValueError, match="repeat"):
        merge_sources(api, TREE, (excel[0], WeComUser(userid="A")))


# -- scale and helpers ----------------------------------------------------------------------


def test_ten_thousand_rows_parse() -> None:
    generated = generate_directory(users=10_000, departments=300, seed=5)
    state = Directory(generated.corp_name)
    state.load(generated.departments, generated.users)
    snapshot = read_address_book(export_xlsx(state), "book.xlsx", departments=_tree(state))
    assert len(snapshot.users) == 10_000 and snapshot.complete
    assert all(u.department for u in snapshot.users)


def test_helpers() -> None:
    assert [column_letter(i) for i in (0, 25, 26, 701, 702)] == ["A", "Z", "AA", "ZZ", "AAA"]
    assert normalize_header(" 手机号 (必填)* ") == "手机号"
    assert normalize_header("禁用项说明：(0-启用;1-禁用)") == "禁用项说明"
    assert parse_mobile(13800000000.0) == "13800000000"
    assert parse_mobile("+1-4155550100") == "+1-4155550100"
