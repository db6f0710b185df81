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
from pathlib import Path

from nlp.segment import homophones

# Messages longer than this are cut: a health check-in is a few lines, and the
# cap keeps a pasted novel from costing more than a normal message.
MAX_CHARS = 2000

# Traditional → simplified: OpenCC's character table (nlp/data/t2s.txt), plus
# a few variants it leaves alone.  A character-class search first lets the
# common all-simplified message skip the translate.
_T2S = Path(__file__).parent / "data" / "t2s.txt"
_EXTRA_TRAD = {"裏": "里", "癥": "症", "痠": "酸", "睏": "困", "麽": "么"}


def _load_trad() -> dict[str, str]:
    table = dict(_EXTRA_TRAD)
    with _T2S.open(encoding="utf-8") as f:
        for line in f:
            if len(line) >= 2 and not line.startswith("#"):
                table.setdefault(line[0], line[1])
    return table


TRAD_TO_SIMP: dict[str, str] = _load_trad()
_TRAD_TABLE = str.maketrans(TRAD_TO_SIMP)
_TRAD_RE = re.compile("[" + "".join(sorted(TRAD_TO_SIMP)) + "]")

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
_FORM_MARK_RE = re.compile(r"(?<=[\u4e00-\u9fff)])[ \t]*([×✗✘╳√✓✔☑■☐□])")
_FORM_MARKS = {
    "×": "：无", "✗": "：无", "✘": "：无", "╳": "：无", "☐": "：无", "□": "：无",
    "√": "：有", "✓": "：有", "✔": "：有", "☑": "：有", "■": "：有",
}
_ANY_FORM_MARK_RE = re.compile("[" + "".join(_FORM_MARKS) + "]")
_FORM_ANSWER_RE = re.compile(r"(?<=[\u4e00-\u9fff])[ \t]+(?=(?:否|无|没有|是|有)(?:[ \t\n，,;；/、]|$))")
_UPPER_RE = re.compile(r"[A-Z]")
# A tick or box *before* each option ("☑发热 □咳嗽", "是否发热：☑是 □否"): a
# ticked yes/no answer is the answer, an unticked one is dropped, and a ticked or
# unticked option becomes "发热：有" / "咳嗽：无".
_BOX_MARKS = "☑✓✔√■☐□"
_TICKED = frozenset("☑✓✔√■")
_BOX_FIRST_RE = re.compile(r"(?:^|(?<=[\s:：，,;；、/|(（]))[" + _BOX_MARKS + r"](?=[\u4e00-\u9fff])")
_BOX_ANSWER_RE = re.compile(r"[ \t]*([" + _BOX_MARKS + r"])(是|否|有|无|没有)(?![\u4e00-\u9fff])[ \t]*")
_BOX_OPTION_RE = re.compile(r"([" + _BOX_MARKS + r"])([\u4e00-\u9fff]{1,8})")
# "38 度 5", "37 . 5", "36 点 8": a reading typed with spaces inside it.
_SPACED_READING_RE = re.compile(r"(?<![\d.])([34]\d)\s*([.。度点])\s*(\d)(?![\d])|(?<![\d.])([34]\d)\s+(?=度|°|摄氏度)")
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


def _join_reading(m: re.Match[str]) -> str:
    if m.group(1):
        return m.group(1) + m.group(2) + m.group(3)
    return m.group(4)


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
    if _BOX_FIRST_RE.search(text):
        # "是否发热：□是 ☑否" → "是否发热：否" (no space left to split the answer from its question)
        text = _BOX_ANSWER_RE.sub(lambda m: m.group(2) + " " if m.group(1) in _TICKED else "", text)
        text = _BOX_OPTION_RE.sub(lambda m: m.group(2) + ("：有 " if m.group(1) in _TICKED else "：无 "), text)
    elif _ANY_FORM_MARK_RE.search(text):
        text = _FORM_MARK_RE.sub(lambda m: _FORM_MARKS[m.group(1)], text)
    text = _strip_junk(text)
    if _TRAD_RE.search(text):
        text = text.translate(_TRAD_TABLE)
    if "卅" in text or "卌" in text:
        text = text.translate(_OLD_TENS)
    if " " in text or "\t" in text:
        text = _SPACED_READING_RE.sub(_join_reading, text)
        text = _FORM_ANSWER_RE.sub("：", text)
    if _UPPER_RE.search(text):  # "Fever 38", "OK"
        text = text.lower()
    if _TYPO_RE.search(text):  # a search is half the cost of a sub that finds nothing
        text = _TYPO_RE.sub(lambda m: _TYPO_MAP[m.group(0)], text)
    text = homophones().fix(text)
    # The rest only ever changes text that holds these characters.
    if "骚" in text:
        text = _FASAO_RE.sub("烧", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return Normalized(text=text, laugh=laugh)
