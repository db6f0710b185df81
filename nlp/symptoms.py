"""Tokens, clauses and negation scope.

A message is cut once by jieba; each token is looked up in the lexicon and
placed in a clause (clauses end at commas, stops, line breaks and spaces —
residents separate facts with spaces as often as with commas).  A negation
reaches forward over the symptom words that follow it in its clause ("无发热、
咳嗽、呼吸困难等症状", "没有咳嗽发烧啥的") until any other content word or a
contrast word (但, 就是, 还...) ends it; a negation that closes a clause
reaches back over it ("咳嗽：无", "发烧倒是没有").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nlp.lexicon import ACT_WORDS, BREATH_WORDS, FALL_WORDS, HARM, LEXICON, Kind

_CLAUSE_BREAKS = frozenset("，,。！!？?；;\n\t ～~…|")
_SENTENCE_BREAKS = frozenset("。！!？?\n")
_BREAK_TOKENS = frozenset("，,。！!？?；;\n\t ～~…|")

# Tokens a negation reaches over on its way to the next symptom.
_NEG_PASSABLE = frozenset(
    ["、", "和", "及", "或", "或者", "也", "等", "啥", "什么", "任何", "其他", "其它", "别的", "明显", "出现", "有", "感觉", "觉得", "发", "再", "太", "怎么", "咋", "很", "一点", "症状", "的", "过", "都", "是", "见", "并", "一直", "多", "怎么样", "有过", "啥的", "之类", "之类的", "等等", "等症状", ":", "：", "咋样", "咋的", "什么的", "也没", "还", "有点"]
)
# Particles that may close a clause after a final negation: "发烧倒是没有啊".
_TRAILING_PARTICLES = frozenset(["了", "啊", "的", "呢", "哦", "呀", "吧", "哈", "嗯", ":", "：", "倒是", "也", "都", "是", "呐", ")", "）", "]", "】", "(", "（"])
_NEGATABLE = frozenset({Kind.SYMPTOM, Kind.FEVER, Kind.BURN, Kind.EMERGENCY, Kind.UNWELL, Kind.SAFE, Kind.RESOLVED, Kind.TALLY})
# What a clause-final negation denies: "咳嗽：无" but not "无症状：无".
_POST_NEGATABLE = frozenset({Kind.SYMPTOM, Kind.FEVER, Kind.BURN, Kind.EMERGENCY, Kind.UNWELL, Kind.TALLY})

# A bare 烧 is a fever only in a fever frame, and never while cooking.
_BURN_NEXT = frozenset(["了", "到", "得", "着", "起来", "呢", "啊", "还", "一直", "的"])
_COOKING = frozenset(["把", "锅", "壶", "水", "饭", "菜", "火", "纸", "柴", "煤", "炉", "肉", "汤", "炕", "香"])
_KIN_SUFFIXES = ("大爷", "大娘", "奶奶", "爷爷", "阿姨", "大妈", "大姐", "大哥", "叔", "婶", "姨", "伯", "嫂", "老师", "师傅")


@dataclass(slots=True)
class Token:
    word: str
    start: int
    end: int
    kind: str | None
    value: str
    negated: bool = False


@dataclass(slots=True)
class Clause:
    start: int
    end: int
    sentence: int
    tokens: list[Token] = field(default_factory=list)
    question: bool = False
    kinds: set[str] = field(default_factory=set)  # the kinds present, to skip idle clauses fast


def _lookup(word: str) -> tuple[str | None, str]:
    term = LEXICON.get(word)
    if term is not None:
        return term
    # A name with a kinship or courtesy word (刘大爷, 王奶奶, 张阿姨) is a
    # neighbour or acquaintance rather than the sender's own family.
    if len(word) >= 3 and word.endswith(_KIN_SUFFIXES):
        return Kind.PERSON, "neighbour"
    return None, ""


# The lexicon without any word that the clause splitter reads as a break, so
# that a hit in it is certainly a content word.  (None is, today: the filter
# keeps that true by construction.)
_TERMS: dict[str, tuple[str, str]] = {
    w: t for w, t in LEXICON.items() if not (w[0] in _CLAUSE_BREAKS or w.isspace())
}


def build_clauses(text: str, words: list[str]) -> list[Clause]:
    clauses: list[Clause] = []
    sentence = 0
    current = Clause(0, 0, 0)
    pos = 0
    n = len(text)
    terms_get = _TERMS.get
    tokens = current.tokens
    for word in words:
        start = pos
        pos = end = start + len(word)
        # Most tokens are lexicon words: look them up before the break tests
        # (no lexicon word is a break, see _TERMS).
        term = terms_get(word)
        if term is not None:
            kind, value = term
            current.kinds.add(kind)
            if kind is Kind.QUESTION:
                current.question = True
            tokens.append(Token(word, start, end, kind, value))
            continue
        # (Every one-character break token is also a break first character.)
        if word[0] in _CLAUSE_BREAKS or word.isspace():
            # "36。5": an ideographic stop between digits is a decimal point.
            if word == "。" and 0 < start < n - 1 and text[start - 1].isdigit() and text[end].isdigit():
                tokens.append(Token(word, start, end, None, ""))
                continue
            if "？" in word or "?" in word:
                current.question = True
            if tokens:
                current.end = start
                clauses.append(current)
            if not _SENTENCE_BREAKS.isdisjoint(word):
                sentence += 1
            if tokens:
                current = Clause(end, end, sentence)
                tokens = current.tokens
            else:
                # Nothing said since the last break: reuse the empty clause
                # (its question mark, if any, went with it) rather than build one.
                current.start = current.end = end
                current.sentence = sentence
                current.question = False
            continue
        if len(word) < 3 or not word.endswith(_KIN_SUFFIXES):
            if word in ACT_WORDS:
                current.kinds.add(Kind.ACT)
            tokens.append(Token(word, start, end, None, ""))
            continue
        kind, value = _lookup(word)
        if kind is not None:
            current.kinds.add(kind)
            if kind is Kind.QUESTION:
                current.question = True
        tokens.append(Token(word, start, end, kind, value))
    if current.tokens:
        current.end = n
        clauses.append(current)
    body: Token | None = None  # a body part left without its feeling at the end of a clause
    sentence = -1
    for clause in clauses:
        kinds = clause.kinds
        if clause.sentence != sentence:
            sentence, body = clause.sentence, None
        if Kind.PAIN in kinds and body is not None:
            # "胸口像压了块石头，疼得直冒汗": the feeling opens the next clause.
            _join_carried_pain(clause, body)
        if Kind.PAIN in kinds and Kind.BODY in kinds:
            body = _join_body_pain(clause)
        else:
            body = next((t for t in reversed(clause.tokens) if t.kind is Kind.BODY), None) if Kind.BODY in kinds else None
        if Kind.NEG in kinds or Kind.ACT in kinds:
            _compose_acts(clause)
        if Kind.BURN in kinds or Kind.FEVER in kinds:
            _resolve_burn(clause)
        if Kind.FAILURE in kinds:
            _compose_failure(clause)
        if Kind.EMERGENCY in kinds:
            _unsmoke(clause)
        if Kind.NEG in kinds:
            _apply_negation(clause)
    return clauses


_BODY_PAIN_GAP = frozenset(["发", "憋得", "憋", "得", "一阵一阵", "一阵阵", "突然", "剧烈", "直", "老是", "都", "有点", "有些", "很", "特别", "一直", "还", "也", "都", "挺", "好", "老", "总", "是", "还是", "又", "开始", "有一点", "非常", "比较", "不", "没", "太", "真"])


def _join_body_pain(clause: Clause) -> Token | None:
    """"嗓子有点疼": a pain word after a body part is that part's symptom.
    Returns the last body part still waiting for its feeling, if any."""
    body: Token | None = None
    waiting: Token | None = None
    for tok in clause.tokens:
        if tok.kind is Kind.BODY:
            body = waiting = tok
        elif tok.kind is Kind.PAIN and body is not None:
            kind, value = _body_effect(body.value, tok.value)
            if kind is not None:
                tok.kind, tok.value = kind, value
                clause.kinds.add(kind)
                body = waiting = None
        elif tok.word not in _BODY_PAIN_GAP:
            body = None
    return waiting


def _join_carried_pain(clause: Clause, body: Token) -> None:
    """A clause that opens with a pain word takes the body part that closed the
    clause before it ("胸口像压了块石头，疼得直冒汗")."""
    for tok in clause.tokens:
        if tok.kind is Kind.PAIN:
            if tok.value == "":  # only pain itself carries; "闷", "烫" need their part beside them
                kind, value = _body_effect(body.value, tok.value)
                if kind is not None:
                    tok.kind, tok.value = kind, value
                    clause.kinds.add(kind)
            return
        if tok.word not in _BODY_PAIN_GAP:
            return


# Calling someone who does not answer ("怎么叫都不答应", "喊了半天没反应"):
# a call word, then within a few tokens a negation and a word of answering.
_CALLS = frozenset(["叫", "喊", "推", "摇", "拍", "叫了", "喊了", "叫他", "叫她", "喊他", "喊她", "怎么叫", "怎么喊"])
_ANSWERS = frozenset(["答应", "醒", "应", "理", "反应", "吭声", "回应", "应声", "动"])
# A sudden fall ("突然就倒了", "一下子栽倒了").
_SUDDEN = frozenset(["突然", "一下子", "猛地", "扑通", "忽然"])
_FALLS = frozenset(["倒", "倒了", "倒下", "倒下了", "栽", "摔倒", "跌倒"])
# Swallowing a whole supply ("吃了一整瓶安眠药", "吞了一把药"): self-harm.
_INGEST = frozenset(["吃", "吞", "喝", "吃了", "吞了", "喝了", "服", "服了", "吃下", "吞下"])
_WHOLE = ("一整瓶", "整瓶", "一瓶", "一大把", "一把", "大把", "好多", "很多", "一板", "整板", "一盒", "整盒", "半瓶", "一大瓶")


def _compose_acts(clause: Clause) -> None:
    """Emergencies said as what happened rather than by a sign's name: a call
    not answered, a sudden fall, a whole supply of pills swallowed."""
    toks = clause.tokens
    for i, tok in enumerate(toks):
        word = tok.word
        if tok.kind is Kind.NEG and word in ("不", "没", "没有") and i + 1 < len(toks) and toks[i + 1].word in _ANSWERS:
            if any(t.word in _CALLS or t.word[:1] in "叫喊" for t in toks[max(0, i - 4) : i]):
                tok.kind, tok.value = Kind.EMERGENCY, ""
                clause.kinds.add(Kind.EMERGENCY)
        elif word in _FALLS and tok.kind is None:
            # A person falls ("我爸突然就倒了"); a cup or a tree does not count.
            before = toks[max(0, i - 3) : i]
            if any(t.word in _SUDDEN for t in before) and any(t.kind is Kind.PERSON for t in toks[:i]):
                tok.kind, tok.value = Kind.EMERGENCY, ""
                clause.kinds.add(Kind.EMERGENCY)
        elif word in _INGEST:
            rest = toks[i + 1 : i + 5]
            if any(t.word.startswith(_WHOLE) for t in rest) and any("药" in t.word for t in rest):
                tok.kind, tok.value = Kind.EMERGENCY, HARM
                clause.kinds.add(Kind.EMERGENCY)


# How many tokens may stand between a body function and its failure word:
# "一口气[就]上不来", "呼吸[越来越]困难", "躺在[地上]起不来".
_FAILURE_GAP = 4


def _compose_failure(clause: Clause) -> None:
    """A failure word after the function it fails is an emergency: breathing
    that fails (呼吸 … 困难, 气 … 上不来) or a fall one cannot rise from (倒/躺 … 起不来)."""
    toks = clause.tokens
    for i, tok in enumerate(toks):
        if tok.kind is not Kind.FAILURE:
            continue
        wanted = BREATH_WORDS if tok.value == "breath" else FALL_WORDS
        for back in toks[max(0, i - _FAILURE_GAP) : i]:
            if back.kind is Kind.NEG:
                break
            if back.word in wanted or (tok.value == "rise" and back.word[:1] in "倒躺摔跌"):
                tok.kind = Kind.EMERGENCY
                tok.value = "breathing" if tok.value == "breath" else ""
                clause.kinds.add(Kind.EMERGENCY)
                break


_NOT_A_FIT = frozenset(["根", "支", "口", "烟", "一根", "一支", "一口", "签", "血", "奖", "空", "时间", "屉", "个", "张", "盒", "水", "管"])


def _unsmoke(clause: Clause) -> None:
    """"抽了" is a fit ("孩子抽了"), not a cigarette ("抽了根烟") or a draw."""
    toks = clause.tokens
    for i, tok in enumerate(toks):
        if tok.word == "抽了" and tok.kind is Kind.EMERGENCY and i + 1 < len(toks) and toks[i + 1].word[:1] in _NOT_A_FIT:
            tok.kind = None


def _body_effect(part: str, feel: str) -> tuple[str | None, str]:
    """What a body part with a feeling after it means."""
    if feel == "hot":  # "额头有点烫", "身上滚烫": a fever
        return Kind.FEVER, ""
    if part == "chest":  # "胸口有点疼" is chest pain; "胸口有点闷" tightness
        if feel == "tight":
            return Kind.SYMPTOM, "breathing"
        return (Kind.EMERGENCY, "") if feel == "" else (None, "")
    if part == "lips":  # "嘴发紫", "脸都青了"
        return (Kind.EMERGENCY, "") if feel == "purple" else (None, "")
    if part == "taste_smell" or feel == "weak":  # "嗅觉有点差"; a weak arm is no symptom
        return (Kind.SYMPTOM, "taste_smell") if part == "taste_smell" and feel == "weak" else (None, "")
    return (Kind.SYMPTOM, part) if feel == "" else (None, "")


# A fever word right before one of these names a product or a category, not a
# body: "发热贴", "发热鞋垫", "发热内衣".
_PRODUCTS = frozenset(["贴", "贴片", "垫", "鞋垫", "片", "内衣", "衣", "服", "背心", "护膝", "手套", "袜", "器", "毯", "膜", "材料", "功能", "宝"])
# What a dish or a pot ends with: "烧了红烧肉", "烧了壶开水".
_DISH_ENDS = frozenset("肉饭菜汤水鱼鸡蛋面粥排骨")


def _resolve_burn(clause: Clause) -> None:
    """Decide whether 烧 / 烧了 in this clause is a fever or a stove."""
    words = [t.word for t in clause.tokens]
    cooking = any(w in _COOKING for w in words)
    for i, tok in enumerate(clause.tokens):
        if tok.kind in (Kind.FEVER, Kind.BURN):
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if nxt in _PRODUCTS:
                tok.kind = None
                continue
            # The thing cooked, right after the verb ("烧了红烧肉", "烧了一锅饭").
            if any(w[-1:] in _DISH_ENDS and w not in ("热水",) for w in words[i + 1 : i + 3]):
                tok.kind = None
                continue
        if tok.kind is Kind.BURN:
            nxt = words[i + 1] if i + 1 < len(words) else ""
            prev = words[i - 1] if i else ""
            fever_frame = nxt in _BURN_NEXT or prev in ("还", "在", "又", "有点", "一直", "开始", "不", "没", "别")
            tok.kind = Kind.FEVER if fever_frame and not cooking else None
            if tok.kind is Kind.FEVER:
                clause.kinds.add(Kind.FEVER)
        elif tok.kind is Kind.FEVER and tok.word in ("烧了", "烧着", "烧得") and cooking:
            tok.kind = None


def _apply_negation(clause: Clause) -> None:
    toks = clause.tokens
    reach = False
    for tok in toks:
        kind = tok.kind
        if kind is Kind.NEG:
            reach = True
        elif kind in _NEGATABLE:
            if reach:
                tok.negated = True
        elif kind is Kind.SCOPE_END or (tok.word not in _NEG_PASSABLE and not tok.word.isdigit()):
            reach = False
    # A negation closing the clause: "咳嗽：无", "发烧倒是没有", "是否发热：否".
    i = len(toks) - 1
    while i >= 0 and toks[i].word in _TRAILING_PARTICLES:
        i -= 1
    if i > 0 and toks[i].kind is Kind.NEG:
        for tok in toks[:i]:
            if tok.kind in _POST_NEGATABLE:
                tok.negated = True
