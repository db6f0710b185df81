"""Every user-facing Chinese string of the handlers, in one place, so wording can be reviewed at once.

Group lines (GROUP_*) never carry a name, a room, a temperature or a symptom: they are checked by
`handlers.common.group_message` as well.
"""

from __future__ import annotations

SYMPTOMS_ZH = {
    "fever": "发热",
    "cough": "咳嗽",
    "sore_throat": "咽痛",
    "fatigue": "乏力",
    "breathing": "呼吸困难/胸闷",
    "diarrhea": "腹泻",
    "taste_smell": "嗅觉味觉减退",
    "headache": "头痛",
    "runny_nose": "流涕",
    "muscle_ache": "肌肉酸痛",
    "chills": "畏寒",
    "vomiting": "呕吐",
}

KIND_ZH = {"fever": "发热预警", "symptom": "症状报告", "emergency": "紧急求助", "missed": "未按时报告"}
REQUEST_ZH = {"groceries": "买菜", "medicine": "买药", "garbage": "垃圾清运", "other": "帮办"}
SLOT_ZH = {"am": "上午", "pm": "下午", "day": "今日"}

# --- group lines: neutral by construction ---
GROUP_ABNORMAL = "已收到，工作人员马上联系您。"

# --- residents, private ---
SAFE_OK = "已记录：{label} {what}平安{temp}。谢谢！"
SAFE_OK_NEIGHBOUR = "已记录：您为 {label} 代报平安{temp}。谢谢！"
STAFF_REPORT_USAGE = "用法：代报 3-2-501 36.5 正常（或写上症状，如：代报 3-2-501 38.2 咳嗽）"
STAFF_REPORT_OK = "已代报：{label} 平安{temp}。"
STAFF_REPORT_ABNORMAL = "已代报：{label} 情况异常，已开预警 {code}。跟进请回复“收到 {code}”，办结回复“完成 {code} 备注”。"
TODO_NONE = "目前没有未办结的预警和服务需求。"
TODO_HEAD = "待办：预警 {e} 件，服务需求 {r} 件"
MEDIA_ASK = "图片和语音我读不出来，请直接打字回复体温和情况，例如：36.5 正常。"
RECALLED_UNDONE = "您撤回的消息所报的情况已撤销，请重新报告。"
RECALLED_TO_STAFF = "{code}：居民撤回了报告这条情况的消息，预警仍然有效，请核实。"
UNCERTAIN = ("您说的是有人现在发烧或身体不适吗？如果是，请写明住址、姓名和体温，例如：3-2-501 王某 38.2，"
             "我马上转告网格员；紧急情况请拨打120。")
LIST_UNMATCHED = "接龙中未能对应住户 {n} 行，请核对：{lines}{more}"
LIST_OK = "已记录接龙新增 {n} 户{abnormal}{unmatched}。谢谢！"
PROXY_SAFE_OK = "已记录您代报的 {n} 户平安：{labels}。谢谢！"
PROXY_NOT_FOUND = "名单里没有找到 {who}，请写清楼号-单元-房号（例如 3-2-501）。"
PROXY_ABNORMAL_ACK = "已收到您代报的情况，已转告网格员，会尽快联系。如有紧急情况请拨打120。"
CORRECTED = "已更正：{label} {what}{temp}。"
ABNORMAL_ACK = (
    "已收到您报告的情况（{summary}），已转告{worker}，会尽快联系您。\n"
    "请一小时后再测一次体温并回复。如出现呼吸困难、胸痛、意识不清，请立即拨打120。"
)
ABNORMAL_UPDATE = "已更新您报告的情况（{summary}），{worker}已知悉。请一小时后再测一次体温并回复。"
EMERGENCY_ACK = "请立即拨打120！已同时通知{worker}和社区医护人员，他们马上联系您。"
UNCLEAR = "您是说体温{guess}℃吗？请回复如：36.5 正常"
UNCLEAR_GENERIC = "没看明白，请再说一遍。报平安可回复如：3-2-501 36.5 正常"
RESIDENT_HELP = (
    "您好！每天请报平安，例如：“36.5 正常”或“全家都好”。\n"
    "身体不适请直接说明，如：“发烧38度，咳嗽”。\n"
    "需要买菜、买药、清运垃圾，请直接说，如：“帮忙买点青菜和鸡蛋”。"
)
UNKNOWN_HOUSEHOLD = "没有找到 {address} 这户，请核对楼号-单元-房号（例如 3-2-501）。"
ACKED_TO_RESIDENT = "{role}{name}已收到您报告的情况，会尽快联系您。"
CLOSED_TO_RESIDENT = "您报告的情况已由{role}{name}处理完毕。{note}"

# --- registration ---
REG_ASK = "您好！请先告诉我您的住址，如：3-2-501 王芳（楼号-单元-房号 姓名）"
REG_NOT_FOUND = "名单里没有找到 {address}，请核对后再发一次（楼号-单元-房号，例如 3-2-501），或联系网格员。"
REG_WRONG_BUILDING = "本群是{building}的群，{address} 不在本楼。请核对楼号，或在自己楼栋的群里登记。"
# A registration waiting for the resident to say which household: a short numbered list.
REG_CHOOSE = "{address} 有{n}处，您住的是哪一处？请回复序号或名称：\n{options}"
REG_CHOOSE_OPTION = "{i}. {label}"
REG_DONE = "登记成功：{label} {name}。以后每天报平安直接回复“平安”或体温即可，例如：36.5 正常。"
REG_CLAIMED = ("已收到您的登记：{label} {name}，网格员确认后生效。如您是名单上的住户，也可以回复您登记手机号的后四位，"
               "立即完成验证。在此之前您报的情况照常转告网格员。")
REG_CLAIM_TO_WORKER = ("【待确认登记 {code}】{label} {name}\n申请人：{who}（{channel} {id}）\n"
                       "核实后回复“确认 {code}”。确认前其报告记为“待确认”，不计入隔离人员本人的报告。")
REG_CLAIM_WAITING = "您的登记（{label}）正在等待网格员确认。报平安可直接回复，如：36.5 正常。"
REG_PROOF_REFUSED = "未能验证，请等待网格员确认，或联系网格员。"
REG_TOO_MANY = "今天的登记次数已用完，请联系本楼网格员帮您登记。"
CONFIRM_USAGE = "用法：确认 P12（待确认登记的编号），或 确认 3-2-501 姓名"
CONFIRM_NONE = "没有找到您负责范围内待确认的登记。"
CONFIRM_WHICH = "有多条待确认登记，请回复编号：{codes}"
CONFIRM_OK = "已确认登记：{label} {name}。"
REG_TO_WORKER = "【新登记】{label} {name} 已绑定微信（{channel}）。"
REG_EMERGENCY = "请立即拨打120！已通知本楼网格员。请同时告诉我您的住址：楼号-单元-房号 姓名。"
REG_FEVER = "已转告本楼网格员。请告诉我您的住址和姓名（例如 3-2-501 王芳），便于网格员联系您。"
REG_ESC_ELSEWHERE = "发送人已登记在 {label}，不在本楼"
REG_ESC_MOVED_HEADER = "发送人报了住址"
REG_ESC_MOVED = "{code}：发送人报了住址 {label} {name}。"
REG_EMERGENCY_NO_ADDRESS = ("请立即拨打120！已通知街道值班人员。请马上告诉我您的住址和姓名（例如 3-2-501 王芳），"
                            "便于工作人员找到您。")
REG_FEVER_NO_ADDRESS = ("已记下您的情况，并已转告街道值班人员。请马上告诉我您的住址和姓名（例如 3-2-501 王芳），"
                        "便于网格员联系您。如情况紧急请拨打120。")
REG_FEVER_CANDIDATES = "已转告相关网格员。请回复序号确认您的住址，便于网格员尽快联系您。"
UNREGISTERED = "未登记居民"
UNREGISTERED_SENDER = "发送人：{name}（未登记，{channel} {id}），请核实住址"

# --- service requests ---
REQUEST_CREATED = "已登记您的{cat}需求{code}：{items}。有人接单后会通知您。"
REQUEST_TO_STAFF = "【{cat}需求 {code}】{label} {name}\n内容：{items}\n原话：“{text}”\n回复“接单 {code}”接单。"
REQUEST_TAKEN = "您的{cat}需求{code}已由{role}{name}接单，会尽快为您办理。"
REQUEST_DONE = "您的{cat}需求{code}已完成。{note}"

# --- staff ---
STAFF_HELP = (
    "可用命令（私聊发给我）：\n"
    "收到 E23 —— 确认预警\n"
    "完成 E23 备注 —— 办结预警\n"
    "接单 R12 —— 接服务需求\n"
    "完成 R12 备注 —— 完成服务需求\n"
    "未报 —— 本网格今日未报户\n"
    "今日 —— 本网格今日台账\n"
    "待办 —— 我未办结的预警和服务需求\n"
    "代报 3-2-501 36.5 正常 —— 电话或上门后替住户报告\n"
    "隔离 3-2-501 [姓名] [11-20] —— 登记居家隔离\n"
    "解除 3-2-501 [姓名] —— 解除居家隔离\n"
    "通知 3号楼|网格|全部 内容 —— 发群通知\n"
    "帮助 —— 本说明"
)
STAFF_UNKNOWN = "没看懂这条命令。发送“帮助”查看可用命令。"
NOT_FOUND_CODE = "没有找到 {code}。"
# One wording for every refusal outside a staff member's grids (codes, households, groups).
OUT_OF_SCOPE_OF = "{what} 不在您负责的网格内，请联系对应网格员。"
OUT_OF_SCOPE = OUT_OF_SCOPE_OF.replace("{what}", "{code}")
ESC_ACKED = "已确认 {code}，预警不再上报。办结后请回复“完成 {code} 备注”。"
ESC_ALREADY_ACKED = "{code} 已由{name}于{at}确认。"
ESC_CLOSED = "已办结 {code}。"
ESC_ALREADY_CLOSED = "{code} 已办结。"
ESC_ACKED_OTHERS = "{code} 已由{role}{name}确认处理。"
ESC_CLOSED_OTHERS = "{code} 已由{role}{name}办结。"
REQ_TAKEN_OK = "已接单 {code}：{label} {items}。完成后请回复“完成 {code}”。"
REQ_ALREADY_TAKEN = "{code} 已由{name}接单。"
REQ_DONE_OK = "已完成 {code}，已告知居民。"
REQ_ALREADY_DONE = "{code} 已完成。"
UNREPORTED_NONE = "今日各户都已报告（共{total}户）。"
UNREPORTED_HEAD = "今日未报 {n}/{total} 户："
QUARANTINE_OK = "已登记居家隔离：{label} {names}，自{start}起共{days}天（至{end}）。"
QUARANTINE_TO_RESIDENT = (
    "您已登记居家隔离，自{start}起共{days}天。每天{times}会提醒您测体温，请按时回复，如：36.5 正常。"
)
RELEASE_OK = "已解除居家隔离：{label} {names}。"
RELEASE_NONE = "{label} 没有正在居家隔离的人员。"
RELEASE_TO_RESIDENT = "您的居家隔离已于今日解除，感谢配合！"
HOUSEHOLD_NOT_FOUND = "没有找到 {address} 这户。"
HOUSEHOLD_OUT_OF_SCOPE = OUT_OF_SCOPE_OF.replace("{what}", "{label}")
NO_SUCH_RESIDENT = "{label} 没有叫“{name}”的居民。"
NO_RESIDENTS = "{label} 名单上没有居民，请先在名单中添加。"
BAD_DATE = "日期看不懂：{text}。请写成 11-20 或 2026-11-20。"
NOTICE_OK = "通知已发送到 {n} 个群。"
NOTICE_NO_GROUPS = "没有找到可发送的群：{scope}。"
NOTICE_USAGE = "用法：通知 3号楼|网格|全部 通知内容"
NOTICE_EMPTY = "通知内容不能为空。用法：通知 3号楼|网格|全部 通知内容"


# --- what the timers say (reminders, prompts, the ledger) ------------------------------------

DAILY_PROMPT = "早上好！请各户回复今日健康情况：如 3-2-501 36.5 正常。有事报情况，无事报平安。"

SLOT_LABELS = {"am": "上午", "pm": "下午"}


def slot_label(slot: str) -> str:
    return SLOT_LABELS.get(slot, "")


def progress(reported: int, due: int) -> str:
    # A group line: counts only, never a name, a room or a health detail.
    return f"今日打卡进度：{reported}/{due} 户"


def quarantine_reminder(name: str, day: int, days: int, slot: str) -> str:
    return (
        f"{name}，您好！今天是居家隔离第{day}天，共{days}天。"
        f"请测量{slot_label(slot)}体温并回复，如 36.5；有咳嗽、乏力等不适请一并说明。"
        "需要买菜、买药或收垃圾，直接回复告诉我们。"
    )


def quarantine_followup(name: str, day: int, days: int, slot: str) -> str:
    return (
        f"{name}，您好！还没有收到您居家隔离第{day}天（共{days}天）{slot_label(slot)}的体温，"
        "请回复体温，如 36.5。有事报情况，无事报平安。"
    )


def missed_summary(slot: str, due_hhmm: str, again_hhmm: str | None) -> str:
    # The alert around it already names the household, the person and the quarantine day.
    asked = f"{due_hhmm} 提醒" + (f"、{again_hhmm} 再次提醒" if again_hhmm else "")
    return f"{slot_label(slot)}体温未报：{asked}{'均' if again_hhmm else '后'}无回复，请电话或上门核实。"


def household_nudge(label: str) -> str:
    return f"您好，今天还没有收到 {label} 的健康打卡。有事报情况，无事报平安，请回复如：{label} 36.5 正常。"


def quarantine_end(label: str, name: str, days: int) -> str:
    return f"居家隔离期满：{label} {name}，第{days}天已结束，回复 解除 {label}"
