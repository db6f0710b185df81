"""The named reasons a proposed fever or emergency is not one.

The parser proposes broadly: every fever word and every body reading at or
above the threshold, every emergency word after normalisation.  Each function
here is one reason to drop a proposal, tested on its own
(tests/test_nlp_exclusions.py).  Where none applies, the proposal stands;
where only a doubtful one does (a question, somebody unnamed), the record
says ``uncertain`` so that the bot asks rather than guesses.

Negation itself ("不发烧", "咳嗽：无", an unticked □ option, which
normalisation turns into "：无") is marked on the tokens by
``nlp.symptoms``; resolution ("退烧了", "今天36.8了") is read in order by the
parser, since it ends only what was said before it.
"""

from __future__ import annotations

import re

from nlp.lexicon import HARM, MEDIA_WORDS, Kind
from nlp.symptoms import Clause, Token

_HYPOTHETICAL_WORDS = frozenset({"如有", "如果", "假如", "要是", "万一", "如", "若", "一旦", "假设", "如果说"})
# What a screen is said with when the story is on it: "电视剧里", "新闻上".
_ON_SCREEN_AFTER = frozenset({"里", "上", "中", "里面", "里的", "上的", "说", "报道", "播"})
# Words of a question for information, not for help.
_INFO_WORDS = ("进来", "进得来", "能进", "让进", "怎么", "咋", "多少", "电话", "号码", "收费", "要钱", "几分钟", "多久")
# A drill or a rehearsal is never a life at risk, wherever it is named.
_DRILLS = frozenset({"演习", "演练", "模拟", "彩排"})
# The people of a story on a screen: "看了个电影，主角高烧昏迷" (but "孩子看电视的时候
# 突然抽搐了" is the child).
_CHARACTERS = frozenset({"主角", "男主", "女主", "男主角", "女主角", "演员", "角色", "主人公", "配角", "剧中人"})
# "发热0人", "发烧人数：0", "0人发热": a count of none.
# (A 无 that opens a word is the next item's negation: "拉肚子 无发热".)
_ZERO_AFTER_RE = re.compile(
    r"(?:人数|人员|户数|病例)?\s*[:：]?\s*(?:(?:0|零)\s*(?:人|户|例|名|个)?(?![\d.])|无\s*(?:人|户|例|名)?(?![\u4e00-\u9fff\d.]))"
)
_ZERO_BEFORE_RE = re.compile(r"(?<![\d.])(?:0|零)\s*(?:人|户|例|名|个)\s*$")


def negated(tok: Token) -> bool:
    """"不发烧", "无发热、咳嗽", "咳嗽：无": the word is denied."""
    return tok.negated


def figure_of_speech(clause: Clause, index: int) -> bool:
    """"笑得喘不上气", "差点晕倒", "菜价涨得让人喘不过气": what follows a hyperbole
    or irrealis marker in its clause is a figure of speech."""
    if Kind.HYPERBOLE not in clause.kinds and Kind.IRREALIS not in clause.kinds:
        return False
    for i, tok in enumerate(clause.tokens):
        if tok.kind in (Kind.HYPERBOLE, Kind.IRREALIS):
            return index >= i
    return False


def hypothetical(clause: Clause, sentence_supposes: bool) -> bool:
    """"如果发烧了怎么办", "万一半夜有人发病，救护车能进来吗": a supposition.

    A supposition word holds its own clause; it holds the rest of its
    sentence only when that sentence is a question (``sentence_supposes``),
    so that "如果方便的话，帮买点药，孩子烧到38.5" keeps its fever."""
    return sentence_supposes or any(tok.word in _HYPOTHETICAL_WORDS for tok in clause.tokens)


def supposes(clauses: list[Clause]) -> bool:
    """Whether these clauses (one sentence) are a question that opens with a supposition."""
    if not any(c.question for c in clauses):
        return False
    return any(tok.word in _HYPOTHETICAL_WORDS for c in clauses for tok in c.tokens)


def long_ago(tokens_before: list[Token]) -> bool:
    """"去年心梗住过院", "以前抽过风": an event long over.  A 今天/现在 after the
    marker brings the story back to now ("去年得过，今天又胸口疼")."""
    for tok in reversed(tokens_before):
        if tok.kind is Kind.NOW:
            return False
        if tok.kind is Kind.LONG_AGO:
            return True
    return False


def on_screen(sentence: list[Token]) -> bool:
    """"电视剧里的人晕倒了", "新闻上说…", "刚看了个电影，主角高烧昏迷", "今天消防演习":
    a screen, the news or a drill (what is on it, or one of its characters)."""
    for i, tok in enumerate(sentence):
        word = tok.word
        if any(drill in word for drill in _DRILLS):  # "消防演习" is one jieba word
            return True
        if word in MEDIA_WORDS and (word.endswith("里") or (i + 1 < len(sentence) and sentence[i + 1].word in _ON_SCREEN_AFTER)):
            return True
        if word in MEDIA_WORDS and any(t.word in _CHARACTERS for t in sentence):
            return True
        if word.endswith("里") and word[:-1] in MEDIA_WORDS:
            return True
    return False


def animal(subject: str | None) -> bool:
    """"狗狗发烧了", "猫抽搐了": the one ill is a pet."""
    return subject == "pet"


def zero_count(text: str, tok: Token) -> bool:
    """"发热0人", "发烧人数：0", "0人发热": a tally that counts nobody."""
    return bool(_ZERO_AFTER_RE.match(text, tok.end) or _ZERO_BEFORE_RE.search(text, 0, tok.start))


def asked_not_told(clause: Clause, tok: Token) -> bool:
    """"救护车能进来吗", "120电话是多少": a question about help, not a cry for it.
    ("能帮叫救护车吗" asks for it, and stays a cry.)"""
    if tok.kind is not Kind.CRY or not clause.question:
        return False
    return any(w in t.word for t in clause.tokens for w in _INFO_WORDS)


def hearsay(index: int, rumour: set[int]) -> bool:
    """"听说3号楼有人发烧，真的假的": within a rumour's reach."""
    return index in rumour


def zero_tally(text: str, tok: Token) -> bool:
    """"咳嗽0人", "发热人员：无": a symptom or a fever category counted as none."""
    return zero_count(text, tok)


# Someone not answering, later reached: "敲门没人应，打电话说是发烧躺着呢".
_UNANSWERED = frozenset({"敲门没人应", "敲门不应", "敲门没反应", "敲门也没人应", "敲门没人开", "没人应门", "叫门不应", "打电话也不接", "没动静"})
_REACHED = ("打电话说", "电话里说", "电话说", "接了电话", "接电话了", "回电话", "回消息", "开门了", "开了门", "回话了")


def reached_later(tok: Token, text: str) -> bool:
    """A door or a phone not answered, when the message goes on to say the
    person was reached after all: no one is missing."""
    if tok.word not in _UNANSWERED:
        return False
    rest = text[tok.end :]
    return any(word in rest for word in _REACHED)


# Being cooped up: "在家憋得慌", "憋在家里快喘不上气了", "一个人住，憋得难受".
_COOPED_MOOD = frozenset({"憋", "憋得", "闷", "憋得慌", "闷得慌", "憋得难受", "闷得难受", "闷死", "憋死", "憋疯", "憋坏", "憋在", "闷在", "快闷死", "憋屈"})
_COOPED_PLACE = frozenset({"在家", "家里", "憋在", "闷在", "宅", "宅在", "一个人", "隔离", "解封", "聊天", "聊聊天", "说说话", "陪", "陪我", "屋里"})
_BREATH_BODY = frozenset({"胸", "胸口", "胸前", "心口", "呼吸", "气", "喘气", "嘴唇", "脸"})


def cooped_up(sentence: list[Token]) -> bool:
    """"在家憋得慌，快闷死了": 憋 and 闷 spoken of staying in, not of the chest.
    A chest or breath named anywhere in the sentence keeps them as breathing."""
    words = {t.word for t in sentence}
    if words.isdisjoint(_COOPED_MOOD) or words.isdisjoint(_COOPED_PLACE):
        return False
    return words.isdisjoint(_BREATH_BODY) and not any(t.kind == Kind.BODY and t.value == "chest" for t in sentence)


# A threat to one's own life is a warning to act on, however it reached the sender:
# "他在群里说要割腕".
_INTENT = frozenset({"要", "想", "准备", "打算", "说要", "闹着要", "嚷着要", "扬言要", "扬言"})


def threatened_harm(clause: Clause) -> bool:
    """A self-harm word announced as an intention ("说要割腕", "想跳楼")."""
    toks = clause.tokens
    for i, tok in enumerate(toks):
        if tok.kind is Kind.EMERGENCY and tok.value == HARM and not tok.negated:
            if i and (toks[i - 1].word in _INTENT or toks[i - 1].word.endswith("要")):
                return True
            if tok.word.startswith(("想", "不想")):
                return True
    return False


# "37度算吗", "38度算高烧不": a figure asked about against the rule, not anyone's reading.
_RULE_AFTER_RE = re.compile(r"\s*(?:度|°c|℃)?\s*(?:算|才算|就算|属于|是不是|是否)")


def rule_question(text: str, start: int, end: int, clause: Clause) -> bool:
    """A figure in a question that asks what counts ("体温多少度算发烧？37度算吗"),
    with no one's reading in it (no person, no "now" word)."""
    if not clause.question or not _RULE_AFTER_RE.match(text, end):
        return False
    return not any(t.kind in (Kind.PERSON, Kind.NOW) for t in clause.tokens)


# Seeing or hearing an ambulance is not calling one.
_SEE = frozenset({"看见", "看到", "听见", "听到", "瞧见", "见到", "发现"})


def seen_not_called(clause: Clause, tok: Token) -> bool:
    """"看见对面楼有救护车来了": a cry word that is only what was seen."""
    if tok.kind is not Kind.CRY:
        return False
    for t in clause.tokens:
        if t is tok:
            return False
        if t.word in _SEE:
            return True
    return False
