"""Staff (网格员, 网格长, 街道, 民警, 医护, 志愿者) in a private chat with the bot: help, and what is
not a command. Each verb is routed in its capability's module (`commands` routers):

    收到 E23 | 完成 E23 [备注]                        handlers/escalation.py
    接单 R12 | 完成 R12 [备注]                        handlers/requests.py
    未报 | 今日                                       handlers/ledger.py
    隔离 3-2-501 [姓名] [11-20] | 解除 3-2-501 [姓名]  handlers/quarantine.py
    通知 3号楼|网格|全部 内容                          handlers/notices.py

Staff commands are private only: in a building group a staff member is one of the neighbours and
the bot stays silent (a command typed into a group would show codes and rooms to everyone).
A staff member acts only within the grids they cover (street roles: their street); members of a
1+4 team may also act on the escalations they were sent. Full-width spaces, colons and letters,
"收到E23" and "收到 e23" all work.
"""

from __future__ import annotations

from bot.dispatch import NOT_HANDLED, Context, Router, UserError
from bot.model import Outbound
from handlers import texts
from handlers.common import staff_command

router = Router("worker")


@router.message(staff_command("收到", "完成", "接单"))
async def on_code_missing(ctx: Context) -> list[Outbound]:
    """收到/完成/接单 whose argument is not a code the capability routers took."""
    verb, args = ctx.data["verb"], ctx.data["args"]
    if verb == "接单" and args[:1].upper() == "E":
        raise UserError("接单用于服务需求（R 开头），预警请回复“收到 " + args.split()[0].upper() + "”。")
    raise UserError(f"请写上编号，例如：{verb} E23" if verb != "接单" else "请写上编号，例如：接单 R12")


@router.message(staff_command("帮助", "help", "?"))
async def on_help(ctx: Context) -> list[Outbound]:
    return [ctx.reply(texts.STAFF_HELP)]


def _staff_private(ctx: Context) -> bool:
    return ctx.staff is not None and (ctx.inbound.is_group or ctx.resident is None)


@router.message(_staff_private)
async def on_other(ctx: Context) -> list[Outbound]:
    """Staff in a group are one of the neighbours: their words go on to the resident handlers (a
    worker who is also a resident reports for their home; a 楼长 reports for others or posts a 接龙),
    and anything else is silence. Staff privately, not a command: a hint."""
    if ctx.inbound.is_group or ctx.resident is not None:
        return NOT_HANDLED
    return [ctx.reply(texts.STAFF_UNKNOWN)]
