"""Generates the example roster (bot/data/roster.xlsx, shipped with the package): a small, made-up community in Jinan's Tianqiao district.

    天桥东街街道 / 成丰社区, two grids:
      成丰一网格: 1号楼, 2号楼 (WeCom groups: the app posts, residents answer it privately)
      成丰二网格: 3号楼 (a group with the WeCom AI bot in it), 5号院 (平房院落, an ordinary
                  WeChat group behind the bridge gateway; 单元 is empty, addresses are "5-12")
    42 households, about 90 residents; 3 in home quarantine (居家隔离), 1 key person (重点人员)
    with the full 1+4 team.

    Staff 微信IDs, for `gridbot chat --user ID`:
      zhangwei  张伟 网格员 成丰一网格        wangfang  王芳 网格员 成丰二网格
      lina      李娜 网格长 (both grids)       liuyang   刘洋 街道干部 (the street)
      chengang  陈刚 民警 (both grids)         yangjing  杨静 医护 (both grids)
      zhaolei   赵磊 志愿者 成丰一网格        huangmin  黄敏 志愿者 成丰二网格
      zhouqiang 周强 街道值班 (the street)
    Residents have pinyin ids such as `sunli` (`sunli2` for a second 孙丽); run
    `python examples/make_roster.py --list` to print them all.

All names, ids and phone numbers are invented. The output is byte-for-byte deterministic (fixed
seed, fixed document timestamps, fixed zip entry times), so the committed file only changes when
this script does:

    .venv/bin/python examples/make_roster.py            # writes bot/data/roster.xlsx

`gridbot demo` plays a day of this community; `gridbot import --example` loads it, and
`gridbot demo --roster-path` prints where the installed copy is.
"""

from __future__ import annotations

import argparse
import io
import random
import re
import zipfile
from datetime import date, datetime
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "bot" / "data" / "roster.xlsx"
STREET = "天桥东街街道"
COMMUNITY = "成丰社区"
GRIDS = ("成丰一网格", "成丰二网格")
# (name, grid, group chat id, channel, units, floors, rooms per floor); units=0 is a courtyard
BUILDINGS = (
    ("1号楼", GRIDS[0], "wrOgQhDgAA1hLou7dQkXmPz1", "wecom", 2, 3, 2),
    ("2号楼", GRIDS[0], "wrOgQhDgAA2hLouR4vYtNa8c", "wecom", 2, 3, 2),
    ("3号楼", GRIDS[1], "wrkSFfCgAA3hLouAIbotQw9e", "aibot", 2, 3, 2),
    ("5号院", GRIDS[1], "bridge-chengfeng-5haoyuan", "bridge", 0, 1, 6),
)
STAFF = (
    # 姓名, 角色, 微信ID, 负责
    ("张伟", "网格员", "zhangwei", GRIDS[0]),
    ("王芳", "网格员", "wangfang", GRIDS[1]),
    ("李娜", "网格长", "lina", "、".join(GRIDS)),
    ("刘洋", "街道干部", "liuyang", STREET),
    ("陈刚", "民警", "chengang", "、".join(GRIDS)),
    ("杨静", "医护", "yangjing", "、".join(GRIDS)),
    ("赵磊", "志愿者", "zhaolei", GRIDS[0]),
    ("黄敏", "志愿者", "huangmin", GRIDS[1]),
    ("周强", "街道值班", "zhouqiang", STREET),
)
SURNAMES = (("孙", "sun"), ("周", "zhou"), ("吴", "wu"), ("郑", "zheng"), ("冯", "feng"), ("陈", "chen"),
            ("褚", "chu"), ("卫", "wei"), ("蒋", "jiang"), ("沈", "shen"), ("韩", "han"), ("朱", "zhu"),
            ("秦", "qin"), ("许", "xu"), ("何", "he"), ("吕", "lv"), ("施", "shi"), ("孔", "kong"),
            ("曹", "cao"), ("严", "yan"), ("华", "hua"), ("金", "jin"), ("魏", "wei"), ("陶", "tao"),
            ("姜", "jiang"), ("谢", "xie"), ("邹", "zou"), ("柏", "bai"), ("窦", "dou"), ("马", "ma"))
GIVEN = (("丽", "li"), ("秀英", "xiuying"), ("建国", "jianguo"), ("桂兰", "guilan"), ("志强", "zhiqiang"),
         ("海燕", "haiyan"), ("明", "ming"), ("淑珍", "shuzhen"), ("磊", "lei"), ("玉梅", "yumei"),
         ("俊杰", "junjie"), ("子涵", "zihan"), ("浩然", "haoran"), ("欣怡", "xinyi"), ("国庆", "guoqing"),
         ("凤英", "fengying"), ("宇轩", "yuxuan"), ("雨桐", "yutong"), ("红霞", "hongxia"), ("长林", "changlin"))
BUILDING_HEADER = ("街道", "社区", "网格", "楼栋", "群ID", "渠道")
STAFF_HEADER = ("姓名", "角色", "手机", "微信ID", "渠道", "负责")
RESIDENT_HEADER = ("楼栋", "单元", "房号", "姓名", "手机", "微信ID", "渠道", "类别", "隔离开始",
                   "包保干部", "包保民警", "包保医护")
FIXED = datetime(2026, 2, 1, 8, 0, 0)  # noqa: DTZ001 - Excel document properties are naive


def households() -> list[tuple[str, str, str]]:
    out = []
    for name, _grid, _chat, _ch, units, floors, per_floor in BUILDINGS:
        if units == 0:
            out += [(name, "", str(n)) for n in range(10, 10 + per_floor)]
            continue
        for unit in range(1, units + 1):
            for floor in range(1, floors + 1):
                out += [(name, str(unit), f"{floor}0{r}") for r in range(1, per_floor + 1)]
    return out


def residents(rng: random.Random) -> list[tuple]:
    rows: list[tuple] = []
    channel = {b[0]: b[3] for b in BUILDINGS}
    taken = {s[2] for s in STAFF}
    for building, unit, room in households():
        surname = rng.choice(SURNAMES)
        size = rng.choice((1, 2, 2, 2, 3, 3, 3))
        given = rng.sample(GIVEN, size)
        for i, g in enumerate(given):
            name = surname[0] + g[0]
            # The elderly often have no WeChat of their own: a family member reports for them.
            has_id = i == 0 or rng.random() < 0.6
            uid = ""
            if has_id:
                uid, n = surname[1] + g[1], 1
                while uid in taken:
                    n += 1
                    uid = f"{surname[1]}{g[1]}{n}"
                taken.add(uid)
            phone = f"138{rng.randrange(10**8):08d}" if has_id else ""
            rows.append([building, unit, room, name, phone, uid, channel[building] if uid else "",
                         "常住", None, "", "", ""])
    # A few special cases, picked deterministically from the list.
    for idx, start in ((3, date(2026, 2, 1)), (31, date(2026, 2, 5)), (77, date(2026, 2, 8))):
        rows[idx][7] = "居家隔离"
        rows[idx][8] = start
        rows[idx][9], rows[idx][11] = "liuyang", "yangjing"
    rows[20][7] = "外来"
    rows[50][7] = "重点人员"
    rows[50][9:12] = ["liuyang", "chengang", "yangjing"]
    return [tuple(r) for r in rows]


def build(path: Path) -> None:
    import openpyxl

    rng = random.Random(20200123)  # staff phones; residents draw from their own seed
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "楼栋"
    ws.append(BUILDING_HEADER)
    for name, grid, chat, ch, *_ in BUILDINGS:
        ws.append((STREET, COMMUNITY, grid, name, chat, ch))
    ws = wb.create_sheet("工作人员")
    ws.append(STAFF_HEADER)
    for name, role, uid, scope in STAFF:
        ws.append((name, role, f"139{rng.randrange(10**8):08d}", uid, "wecom", scope))
    ws = wb.create_sheet("居民")
    ws.append(RESIDENT_HEADER)
    for row in residents(random.Random(20200210)):
        ws.append(row)
        if row[8] is not None:
            ws.cell(ws.max_row, 9).number_format = "yyyy-mm-dd"
    for sheet in wb.worksheets:
        for col in "ABCDEFGHIJKL":
            sheet.column_dimensions[col].width = 14
    wb.properties.creator = "gridbot examples/make_roster.py"
    wb.properties.created = FIXED
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(_deterministic(buf.getvalue()))


def _deterministic(data: bytes) -> bytes:
    """openpyxl stamps the save time into docProps/core.xml and every zip entry; pin both."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                body = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2026-02-01T08:00:00Z", body)
            entry = zipfile.ZipInfo(info.filename, date_time=(2026, 2, 1, 8, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = info.external_attr
            dst.writestr(entry, body)
    return out.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--list", action="store_true", help="print the residents' 微信IDs instead")
    args = p.parse_args()
    if args.list:
        print(f"{len(households())} households")
        for row in residents(random.Random(20200210)):
            if row[5]:
                label = "-".join(x for x in (re.match(r"\d+", row[0]).group(), row[1], row[2]) if x)  # type: ignore[union-attr]
                print(f"{row[5]:<28} {row[3]:<4} {label:<8} {row[7]}")
        return
    build(Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
