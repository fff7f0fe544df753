"""Large, realistic, deterministic directories for the simulators, tests and benchmarks.

``generate_directory(users=100_000, departments=5_000, seed=7)`` returns plain data in
WeCom's API shapes (department/create and user/create bodies), so it seeds the WeCom
simulator as-is and can be mapped onto an Authing pool. The same seed always gives the
same directory. Names are common Chinese names; userids are their pinyin, numbered on
collision (``zhangwei``, ``zhangwei2``...) as companies do; the tree has named top-level
functions, regional and team levels, and reaches ``max_depth`` levels.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

ROOT_ID = 1

_SURNAMES = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
    ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"),
    ("马", "ma"), ("朱", "zhu"), ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("高", "gao"),
    ("林", "lin"), ("罗", "luo"), ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"),
    ("唐", "tang"), ("许", "xu"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"),
    ("彭", "peng"), ("曾", "zeng"), ("肖", "xiao"), ("田", "tian"), ("董", "dong"), ("袁", "yuan"),
    ("潘", "pan"), ("于", "yu"), ("蒋", "jiang"), ("蔡", "cai"), ("余", "yu"), ("杜", "du"),
    ("叶", "ye"), ("程", "cheng"), ("苏", "su"), ("魏", "wei"), ("吕", "lv"), ("丁", "ding"),
    ("任", "ren"), ("沈", "shen"), ("姚", "yao"), ("卢", "lu"), ("姜", "jiang"), ("崔", "cui"),
    ("钟", "zhong"), ("谭", "tan"), ("陆", "lu"), ("汪", "wang"), ("范", "fan"), ("金", "jin"),
    ("石", "shi"), ("廖", "liao"), ("贾", "jia"), ("夏", "xia"), ("韦", "wei"), ("方", "fang"),
    ("白", "bai"), ("邹", "zou"), ("孟", "meng"), ("熊", "xiong"), ("秦", "qin"), ("邱", "qiu"),
    ("江", "jiang"), ("尹", "yin"), ("薛", "xue"), ("段", "duan"), ("雷", "lei"), ("侯", "hou"),
    ("龙", "long"), ("史", "shi"), ("陶", "tao"), ("贺", "he"), ("顾", "gu"), ("毛", "mao"),
    ("郝", "hao"), ("龚", "gong"), ("邵", "shao"), ("钱", "qian"), ("严", "yan"), ("武", "wu"),
    ("戴", "dai"), ("孔", "kong"), ("汤", "tang"), ("欧阳", "ouyang"), ("司马", "sima"),
    ("诸葛", "zhuge"), ("上官", "shangguan"),
)
_GIVEN = (
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"),
    ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("艳", "yan"),
    ("杰", "jie"), ("娟", "juan"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("秀", "xiu"),
    ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("英", "ying"), ("华", "hua"), ("玉", "yu"),
    ("萍", "ping"), ("红", "hong"), ("鹏", "peng"), ("辉", "hui"), ("建", "jian"), ("文", "wen"),
    ("斌", "bin"), ("宇", "yu"), ("浩", "hao"), ("凯", "kai"), ("健", "jian"), ("俊", "jun"),
    ("帆", "fan"), ("旭", "xu"), ("宁", "ning"), ("欣", "xin"), ("佳", "jia"), ("雪", "xue"),
    ("婷", "ting"), ("琳", "lin"), ("晨", "chen"), ("思", "si"), ("梦", "meng"), ("雨", "yu"),
    ("悦", "yue"), ("子", "zi"), ("轩", "xuan"), ("博", "bo"), ("涵", "han"), ("嘉", "jia"),
    ("怡", "yi"), ("瑶", "yao"), ("晓", "xiao"), ("志", "zhi"), ("海", "hai"), ("波", "bo"),
    ("峰", "feng"), ("云", "yun"), ("飞", "fei"), ("慧", "hui"), ("颖", "ying"), ("倩", "qian"),
    ("亮", "liang"), ("成", "cheng"), ("东", "dong"), ("鑫", "xin"), ("宏", "hong"), ("丹", "dan"),
    ("阳", "yang"), ("蕾", "lei"), ("昊", "hao"), ("然", "ran"), ("泽", "ze"), ("睿", "rui"),
    ("航", "hang"), ("诺", "nuo"), ("安", "an"), ("琪", "qi"), ("雅", "ya"), ("晴", "qing"),
)
_TOP_LEVEL = (
    "研发中心", "产品部", "设计部", "市场部", "销售部", "客户成功部", "运营部", "财务部",
    "人力资源部", "行政部", "法务部", "采购部", "供应链管理部", "质量管理部", "信息技术部",
    "战略发展部", "公共关系部", "投资部", "审计部", "数据中心",
)
_MIDDLE = (
    "华东区", "华南区", "华北区", "西南区", "西北区", "东北区", "华中区", "北京分公司",
    "上海分公司", "深圳分公司", "广州分公司", "杭州分公司", "成都分公司", "武汉分公司",
    "南京分公司", "西安分公司", "平台研发部", "基础架构部", "移动端研发部", "数据智能部",
    "安全部", "商业化部", "国际业务部", "政企业务部", "渠道部", "品牌部", "增长部",
)
_TEAMS = (
    "后端组", "前端组", "测试组", "运维组", "算法组", "数据组", "大客户组", "渠道组", "交付组",
    "实施组", "售前组", "客服组", "招聘组", "薪酬组", "培训组", "核算组", "税务组", "资金组",
    "项目管理组", "架构组", "客户端组", "中台组", "风控组", "内容组", "活动组", "用户研究组",
)
_POSITIONS = (
    "工程师", "高级工程师", "资深工程师", "架构师", "测试工程师", "产品经理", "高级产品经理",
    "设计师", "销售经理", "客户经理", "会计", "出纳", "人事专员", "招聘专员", "行政助理",
    "运营专员", "法务专员", "采购专员", "数据分析师", "项目经理", "主管", "经理", "总监", "实习生",
)
_MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151",
                    "152", "153", "155", "156", "158", "159", "166", "177", "180", "181", "185",
                    "186", "187", "188", "189", "199")
_CHINESE_NUMERALS = "一二三四五六七八九十"


@dataclass(frozen=True, slots=True)
class GeneratedDirectory:
    """Plain data: ``departments`` are department/create bodies (parents first, the root
    with id 1 included); ``users`` are user/create bodies plus ``status`` (1, 2 or 4)."""

    corp_name: str
    departments: list[dict[str, Any]]
    users: list[dict[str, Any]]


def generate_directory(users: int = 1_000, departments: int = 50, *, seed: int = 0,
                       max_depth: int = 8, corp_name: str = "示例科技",
                       email_domain: str = "example.com",
                       multi_department_ratio: float = 0.05) -> GeneratedDirectory:
    """Build a directory of ``departments`` departments (root included) and ``users`` users.

    ``max_depth`` counts the root as level 1 (WeCom allows 15). Each department's first
    member leads it; about ``multi_department_ratio`` of users sit in two or three.
    """
    if departments < 1 or users < 0:
        raise ValueError("need at least the root department and a non-negative user count")
    if not 2 <= max_depth <= 15:
        raise ValueError("max_depth must be within 2..15 (WeCom's limit is 15 levels)")
    rng = random.Random(seed)
    with paused_gc():
        tree = _departments(rng, departments, max_depth, corp_name)
        people = _users(rng, users, [d["id"] for d in tree[1:]] or [ROOT_ID], email_domain,
                        multi_department_ratio)
    return GeneratedDirectory(corp_name, tree, people)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Building 10^5 records only allocates; the cyclic collector would rescan them all
    again and again (it doubles the time), and there are no cycles to find."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _departments(rng: random.Random, count: int, max_depth: int,
                 corp_name: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = [
        {"id": ROOT_ID, "name": corp_name, "parentid": 0, "order": 100_000_000}]
    depth = {ROOT_ID: 1}
    child_names: dict[int, set[str]] = {ROOT_ID: set()}
    eligible = [ROOT_ID]  # departments that may still take children
    top = min(len(_TOP_LEVEL), max(1, (count - 1) // 20), count - 1)
    for dept_id in range(2, count + 1):
        if dept_id - 2 < top:
            parent = ROOT_ID
        else:
            parent = rng.choice(eligible[-20:] if rng.random() < 0.3 else eligible)
            if parent != ROOT_ID and depth[parent] > 2 and rng.random() < 0.45:
                parent = records[parent - 1]["parentid"]  # widen: real trees are bushy
        level = depth[parent] + 1
        pool = _TOP_LEVEL if level == 2 else _MIDDLE if level == 3 else _TEAMS
        name = _unique_name(rng, pool, child_names[parent])
        child_names[parent].add(name)
        order = 100_000_000 - 1000 * len(child_names[parent])
        records.append({"id": dept_id, "name": name, "parentid": parent, "order": order})
        depth[dept_id] = level
        child_names[dept_id] = set()
        if level < max_depth:
            eligible.append(dept_id)
    return records


def _unique_name(rng: random.Random, pool: tuple[str, ...], taken: set[str]) -> str:
    """A pool name no sibling has; past the pool, numbered variants (``后端二组``, ``后端11组``)."""
    if len(taken) < len(pool):
        for _ in range(8):
            candidate = rng.choice(pool)
            if candidate not in taken:
                return candidate
        free = [name for name in pool if name not in taken]
        if free:
            return rng.choice(free)
    base = rng.choice(pool)
    stem, suffix = (base[:-1], base[-1]) if base.endswith(("组", "部", "区")) else (base, "")
    number = 2
    while True:
        label = _CHINESE_NUMERALS[number - 1] if number <= 10 else str(number)
        candidate = f"{stem}{label}{suffix}"
        if candidate not in taken:
            return candidate
        number += 1


def _users(rng: random.Random, count: int, departments: list[int], domain: str,
           multi_ratio: float) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    leaders: dict[int, str] = {}
    salt = rng.randrange(10**8)
    for index in range(count):
        surname, surname_py = rng.choice(_SURNAMES)
        given = [rng.choice(_GIVEN) for _ in range(1 if rng.random() < 0.35 else 2)]
        name = surname + "".join(c for c, _ in given)
        base = surname_py + "".join(p for _, p in given)
        seen[base] = seen.get(base, 0) + 1
        userid = base if seen[base] == 1 else f"{base}{seen[base]}"

        dept_count = 1 if rng.random() >= multi_ratio else rng.choice((2, 2, 3))
        chosen = ([rng.choice(departments)] if dept_count == 1
                  else rng.sample(departments, min(dept_count, len(departments))))
        flags = []
        for dept_id in chosen:
            flags.append(0 if dept_id in leaders else 1)
            leaders.setdefault(dept_id, userid)
        # index -> serial is a bijection mod 10^8 (7919 is prime to 10): unique, any prefix.
        serial = (index * 7919 + salt) % 10**8
        mobile = f"{rng.choice(_MOBILE_PREFIXES)}{serial:08d}"
        roll = rng.random()
        record: dict[str, Any] = {
            "userid": userid,
            "name": name,
            "department": chosen,
            "order": [rng.randrange(1000) for _ in chosen],
            "is_leader_in_dept": flags,
            "main_department": chosen[0],
            "position": "负责人" if flags[0] else rng.choice(_POSITIONS),
            "gender": rng.choice(("1", "2")),
            "mobile": "" if roll < 0.03 else mobile,
            "email": "" if 0.03 <= roll < 0.13 else f"{userid}@{domain}",
            "status": 1 if rng.random() < 0.92 else rng.choice((2, 4, 4)),
        }
        leader = leaders[chosen[0]]
        if leader != userid and rng.random() < 0.5:
            record["direct_leader"] = [leader]
        if rng.random() < 0.1:
            record["telephone"] = f"010-{rng.randrange(60_000_000, 90_000_000)}"
        records.append(record)
    return records
