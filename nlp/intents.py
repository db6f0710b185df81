"""What a message is doing: a notice, a rumour, a request, a cry for help.

These decisions sit above the clause level: a notice voids the whole message,
a rumour voids the rest of its sentence, a request needs a cue (帮, 麻烦,
代购...) and an item in the same sentence.
"""

from __future__ import annotations

from nlp.lexicon import Kind
from nlp.symptoms import Clause, Token

# Rumour markers that come after the story they doubt ("…，真的假的").
_TRAILING_RUMOUR = frozenset({"真的假的", "是真的吗", "是不是真的", "真假", "辟谣"})
_HYPOTHETICAL_WORDS = frozenset({"如有", "如果", "假如", "要是", "万一", "如", "若", "一旦", "假设", "如果说"})
# Person words that do not make a message a resident's own report: staff
# speak of 咱们, 我们 and 大家 as well.
_GENERIC_PEOPLE = frozenset({"咱", "咱们", "我们", "俺们", "大家", "咱家人"})
_LAUGH_WORDS = frozenset({"哈哈", "哈哈哈", "哈哈哈哈", "笑死", "笑死了", "嘿嘿", "呵呵", "笑到"})
# Emergency words that jokes borrow; a laughing message does not get them.
_SOFT_EMERGENCY = frozenset({"晕倒", "晕了", "晕过去", "不行了", "喘", "气喘", "喘不上气", "喘不过气", "憋气", "倒地", "晕在", "昏了"})
# Cries that call the ambulance are never a grumble.
_CALLS = ("120", "救护车", "急救")
_REQUEST_ORDER = ("medicine", "groceries", "garbage", "other")


def is_notice(clauses: list[Clause], has_fever_reading: bool) -> bool:
    """A notice, announcement or rule from staff, not a resident's report."""
    strong = 0
    # Weak signs count within one sentence: a form's title and its questions
    # ("每日健康报告 / 是否有发热、干咳等症状：无") are not a notice's wording.
    weak_in: dict[int, int] = {}
    for clause in clauses:
        for tok in clause.tokens:
            if tok.kind is Kind.NOTICE:
                if tok.value == "strong":
                    strong += 1
                else:
                    weak_in[clause.sentence] = weak_in.get(clause.sentence, 0) + 1
            elif tok.kind is Kind.PERSON and tok.value in ("self", "family") and tok.word not in _GENERIC_PEOPLE:
                return False
    if strong == 0 and max(weak_in.values(), default=0) < 2:
        return False
    # A fever-level reading outweighs wording that merely sounds official.
    return strong > 0 or not has_fever_reading


def rumour_clauses(clauses: list[Clause]) -> set[int]:
    """Indices of clauses inside a rumour's reach (to the end of its sentence)."""
    out: set[int] = set()
    for i, clause in enumerate(clauses):
        for tok in clause.tokens:
            if tok.kind is not Kind.RUMOUR:
                continue
            if tok.word in _TRAILING_RUMOUR:
                # "…有人发烧了，真的假的": the doubted story is the clause before.
                out.add(i)
                if i and clauses[i - 1].sentence == clause.sentence:
                    out.add(i - 1)
            else:
                # To the end of its sentence, or until the sender turns to their
                # own ("…有人说是发烧拉走的，…，我家都好着呢").
                for j in range(i, len(clauses)):
                    later = clauses[j]
                    if later.sentence != clause.sentence or (j > i and _opens_with_own(later)):
                        break
                    out.add(j)
    return out


def _opens_with_own(clause: Clause) -> bool:
    first = clause.tokens[0]
    return first.kind is Kind.PERSON and first.value in ("self", "family") and first.word not in _GENERIC_PEOPLE


def is_hypothetical(clause: Clause) -> bool:
    return any(tok.word in _HYPOTHETICAL_WORDS for tok in clause.tokens)


def has_laugh(clauses: list[Clause]) -> bool:
    return any(tok.word in _LAUGH_WORDS for clause in clauses for tok in clause.tokens)


def suppressed_from(clause: Clause) -> int:
    """Index of the first token after a hyperbole or irrealis marker; words from
    there on are figures of speech ("笑得喘不上气", "差点晕倒")."""
    if Kind.HYPERBOLE not in clause.kinds and Kind.IRREALIS not in clause.kinds:
        return len(clause.tokens)
    for i, tok in enumerate(clause.tokens):
        if tok.kind in (Kind.HYPERBOLE, Kind.IRREALIS):
            return i
    return len(clause.tokens)


def emergency_in(clause: Clause, laugh: bool, mundane: bool, health: bool) -> bool:
    """Whether this clause signals a life at risk now."""
    limit = suppressed_from(clause)
    for i, tok in enumerate(clause.tokens):
        if tok.negated:
            continue
        if tok.kind is Kind.EMERGENCY:
            if i >= limit or (laugh and tok.word in _SOFT_EMERGENCY):
                continue
            return True
        if tok.kind is Kind.CRY:
            if i >= limit or laugh:
                continue
            # "救命啊，菜太贵了": a cry over prices is a grumble.
            if mundane and not health and not any(w in tok.word for w in _CALLS):
                continue
            return True
    return False


def _asks(toks: list[Token], thanked: bool) -> bool:
    """A real ask, not thanks for a past favour ("谢谢帮忙买的菜")."""
    for i, tok in enumerate(toks):
        if tok.kind is Kind.ASK:
            if thanked and any(t.word == "的" for t in toks[i + 1 : i + 4]):
                continue
            return True
    return False


def find_request(clauses: list[Clause]) -> tuple[str | None, list[str]]:
    """The service asked for, and the items as written, from eligible clauses."""
    # Only a sentence with an ask or a complaint yields a request.
    if not any(Kind.ASK in c.kinds or Kind.COMPLAINT in c.kinds for c in clauses):
        return None, []
    by_sentence: dict[int, list[Token]] = {}
    for clause in clauses:
        by_sentence.setdefault(clause.sentence, []).extend(clause.tokens)
    all_items = [t for toks in by_sentence.values() for t in toks if t.kind is Kind.ITEM]
    categories: list[str] = []
    items: list[str] = []
    for toks in by_sentence.values():
        kinds = {t.kind for t in toks}
        if Kind.CANCEL in kinds:
            continue
        sentence_items = [t for t in toks if t.kind is Kind.ITEM]
        if Kind.ASK in kinds and _asks(toks, Kind.THANKS in kinds):
            chosen = sentence_items or all_items
        elif Kind.COMPLAINT in kinds:
            # Garbage left lying is a request; for anything else only a
            # delivery that did not come is ("菜怎么还没到").
            any_item = any(t.kind is Kind.COMPLAINT and t.value == "any" for t in toks)
            chosen = [t for t in sentence_items if any_item or t.value == "garbage"]
            if any_item and not chosen:
                chosen = all_items
        else:
            continue
        # A cue that names its own service ("修", "陪") decides the kind of
        # job: "冰箱坏了，菜都坏了，找人修一下" asks for a repair, not food.
        implied = [t.value for t in toks if t.kind is Kind.ASK and t.value]
        if implied:
            categories.extend(implied)
            chosen = [t for t in chosen if t.value in implied] or chosen
        else:
            categories.extend(t.value for t in chosen)
        for t in chosen:
            if t.word not in items:
                items.append(t.word)
    if not categories:
        return None, []
    for category in _REQUEST_ORDER:
        if category in categories:
            return category, items
    return None, []
