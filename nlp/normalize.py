"""Text clean-up before anything else looks at a message.

Residents type on phones with every input method there is: full-width digits,
traditional characters, pinyin slips, emoji and WeChat's ``[抱拳]`` codes.  We
fold all of that into one plain simplified form so that the lexicons and the
number patterns only have to know one spelling.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Messages longer than this are cut: a health check-in is a few lines, and the
# cap keeps a pasted novel from costing more than a normal message.
MAX_CHARS = 2000

# Traditional → simplified for the characters this domain uses.  A full
# converter would be a new dependency; a check-in vocabulary needs only this.
_TRAD = (
    "發发 燒烧 熱热 體体 溫温 頭头 嚨咙 難难 氣气 悶闷 瀉泻 嘔呕 無无 沒没 報报 幫帮 買买 賣卖 藥药 "
    "麼么 嗎吗 們们 個个 這这 裡里 裏里 來来 還还 點点 兒儿 媽妈 爺爷 孫孙 婦妇 離离 門门 號号 樓楼 單单 "
    "請请 問问 聽听 說说 謝谢 煩烦 東东 療疗 醫医 診诊 證证 開开 時时 現现 過过 覺觉 聞闻 嘗尝 應应 嚴严 "
    "緊紧 壓压 雞鸡 麵面 紙纸 衛卫 電电 給给 讓让 鐘钟 錯错 寫写 剛刚 會会 顫颤 戰战 厲厉 兩两 歲岁 測测 "
    "狀状 異异 適适 愛爱 對对 鄰邻 區区 網网 員员 務务 處处 戶户 護护 車车 後后 傳传 確确 經经 陣阵 暈晕 "
    "叫叫 喪丧 鼻鼻 濃浓 痰痰 嗽嗽 喉喉 腦脑 睏困 乾干 渾浑 癢痒 們们 媳媳 爹爹 姥姥 師师 傅傅 壞坏 修修 "
    "遞递 裹裹 寄寄 陪陪 話话 垃垃 圾圾 擔担 憂忧 嚇吓 飯饭 吃吃 蘿萝 蔔卜 蛋蛋 米米 油油 奶奶 糧粮 "
    "場场 紀纪 錄录 隊队 層层 間间 級级 輛辆 區区 縣县 將将 隻只 幾几 為为 與与 麗丽 龍龙 馬马 張张 劉刘 "
    "趙赵 陳陈 楊杨 吳吴 黃黄 從从 們们 鬆松 聯联 繫系 總总 並并 備备 溝沟 準准 嚴严 燙烫 鬧闹 痠酸 "
    "歡欢 驚惊 厥厥 搐搐 筋筋 昏昏 倒倒 醒醒 紫紫 喘喘 哮哮 胸胸 貴贵 錢钱 塊块 斤斤 紅红 綠绿 樂乐 "
    "實实 盡尽 快快 救救 命命 急急 隨随 帶带 給给 邊边 樣样 樂乐 認认 識识 舒舒 服服 適适 爾尔 歷历 "
    "這这 麽么 著着 於于 雖虽 與与 讀读 課课 學学 習习 網网 碼码 掃扫 領领 導导 關关 閉闭 卻却 燈灯 "
    "寶宝 貝贝 孫孙 爸爸 碗碗 湯汤 鍋锅 壺壶 腳脚 淚泪 臟脏 腸肠 腫肿 癥症 傷伤 風风 熱热 凍冻 涼凉"
)
_TRAD_TABLE = str.maketrans({pair[0]: pair[1] for pair in _TRAD.split()})
# str.translate walks the text in Python-object steps; a character-class
# search first lets the common all-simplified message skip it.  (Pairs that
# map a character to itself change nothing and are left out.)
_TRAD_RE = re.compile("[" + "".join(sorted({p[0] for p in _TRAD.split() if p[0] != p[1]})) + "]")

# Pinyin input slips that are common enough to trust wherever they appear.
_TYPOS: tuple[tuple[str, str], ...] = (
    ("发稍", "发烧"),
    ("低稍", "低烧"),
    ("高稍", "高烧"),
    ("咳速", "咳嗽"),
    ("咳素", "咳嗽"),
    ("休温", "体温"),
    ("体问", "体温"),
    ("体稳", "体温"),
    ("正长", "正常"),
    ("抱平安", "报平安"),
    ("保平安", "报平安"),
    ("报平按", "报平安"),
    ("网格圆", "网格员"),
    ("喉龙", "喉咙"),
    ("桑子", "嗓子"),
    ("拉度子", "拉肚子"),
    ("流鼻滴", "流鼻涕"),
    ("今们", "今天"),
    ("夜来", "昨天"),
)
_TYPO_RE = re.compile("|".join(re.escape(a) for a, _ in _TYPOS))
_TYPO_MAP = dict(_TYPOS)

# "发骚" is a real (rude) word, so it only becomes 发烧 where a reading or
# a fever-like continuation follows it.
_FASAO_RE = re.compile(r"(?<=[发低高])骚(?=了|到|\s*\d|[，,。 ]|$|得|呢|啊)")

# Form answers typed after a space ("是否发热 否", "咳嗽 无") or as a tick or
# cross ("发热 × 咳嗽 √"): fold them into the "发热：无" shape that the
# clause-final negation already reads.
_FORM_MARK_RE = re.compile(r"(?<=[\u4e00-\u9fff)])[ \t]*([×✗✘╳√✓✔☑])")
_FORM_MARKS = {"×": "：无", "✗": "：无", "✘": "：无", "╳": "：无", "√": "：有", "✓": "：有", "✔": "：有", "☑": "：有"}
_ANY_FORM_MARK_RE = re.compile("[" + "".join(_FORM_MARKS) + "]")
_FORM_ANSWER_RE = re.compile(r"(?<=[\u4e00-\u9fff])[ \t]+(?=(?:否|无|没有|是|有)(?:[ \t\n，,;；/、]|$))")
_UPPER_RE = re.compile(r"[A-Z]")
# Old numerals for tens: 卅六度五 = 三十六度五.
_OLD_TENS = str.maketrans({"卅": "三十", "卌": "四十"})

# WeChat renders its own stickers as bracketed names: [抱拳], [捂脸], [强].
_WECHAT_CODE_RE = re.compile(r"\[[\u4e00-\u9fffA-Za-z]{1,4}\]")
_LAUGH_CODES = ("[捂脸]", "[破涕为笑]", "[偷笑]", "[笑哭]", "[奸笑]", "[呲牙]", "[坏笑]", "[憨笑]")
_LAUGH_EMOJI = "😂🤣😆😄😅😹😝😜🙈😁"
# One scan for any laughing emoji instead of one `in` per emoji; the sticker
# codes are looked for only when there is a "[" at all.
_LAUGH_EMOJI_RE = re.compile("[" + _LAUGH_EMOJI + "]")
# Anything that is neither a letter, digit, CJK, punctuation nor whitespace:
# emoji, pictographs, control characters and private-use code points.
_JUNK_CATEGORIES = frozenset({"So", "Sk", "Cc", "Cf", "Co", "Cs", "Cn", "Mn", "Me", "Mc"})
_KEEP_SYMBOLS = frozenset("°℃≥≤><~～+%")


@dataclass(frozen=True, slots=True)
class Normalized:
    text: str
    laugh: bool


# Text made only of these needs no per-character look at Unicode categories.
_PLAIN_RE = re.compile(r"[\u4e00-\u9fff\w \n，。：；！？、,.:;!?\-()（）【】「」《》<>\[\]…~～%°+/·“”\"'=*#&]*")


def _strip_junk(text: str) -> str:
    if _PLAIN_RE.fullmatch(text):
        return text
    out = []
    for ch in text:
        if ch in "\n\t":
            out.append(ch)
            continue
        cat = unicodedata.category(ch)
        if cat in _JUNK_CATEGORIES and ch not in _KEEP_SYMBOLS:
            # Keep a word boundary where an emoji separated two words.
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def normalize(text: str) -> Normalized:
    """Fold a raw message into the one spelling the rest of the parser knows."""
    text = text[:MAX_CHARS]
    laugh = _LAUGH_EMOJI_RE.search(text) is not None or ("[" in text and any(code in text for code in _LAUGH_CODES))
    if "[" in text:
        text = _WECHAT_CODE_RE.sub(" ", text)
    # NFKC folds full-width digits and punctuation (３６．６ → 36.6, ６－３ → 6-3)
    # and ℃ into °C; the ideographic full stop 。 is kept and handled where
    # it may be a decimal point.
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    if _ANY_FORM_MARK_RE.search(text):
        text = _FORM_MARK_RE.sub(lambda m: _FORM_MARKS[m.group(1)], text)
    text = _strip_junk(text)
    if _TRAD_RE.search(text):
        text = text.translate(_TRAD_TABLE)
    if "卅" in text or "卌" in text:
        text = text.translate(_OLD_TENS)
    if " " in text or "\t" in text:
        text = _FORM_ANSWER_RE.sub("：", text)
    if _UPPER_RE.search(text):  # "Fever 38", "OK"
        text = text.lower()
    if _TYPO_RE.search(text):  # a search is half the cost of a sub that finds nothing
        text = _TYPO_RE.sub(lambda m: _TYPO_MAP[m.group(0)], text)
    # The rest only ever changes text that holds these characters.
    if "骚" in text:
        text = _FASAO_RE.sub("烧", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return Normalized(text=text, laugh=laugh)
