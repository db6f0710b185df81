"""``parse``: one resident message in, one ``ParseResult`` out.

Pure and synchronous: no I/O after import, never raises.  The contract for
the fields is ``CONTRACT.md`` of the NLP evaluation; the extra fields
(``concerns``, ``address``, ``items``, ``unclear``, ``persons``,
``correction``) are for the handlers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from nlp import exclusions
from nlp.address import find_address
from nlp.intents import (
    emergency_in,
    find_request,
    has_laugh,
    is_notice,
    rumour_clauses,
    suppressed_from,
)
from nlp.lexicon import HARM, MEDIA_WORDS, Kind
from nlp.normalize import normalize
from nlp.segment import cut, warm_up
from nlp.subjects import Anchor, Subject, anchors_in, list_lines, merge_subjects
from nlp.symptoms import Clause, Token, build_clauses
from nlp.temperature import Reading, find_readings, is_lone_number

DEFAULT_FEVER_AT = 37.3

# WeChat's quote-reply: the quoted message, then a line of spaced dashes.
_QUOTE_RE = re.compile(r"^.*?\n\s*(?:-\s*){4,}\n", re.S)
# "365", "体温372": a reading typed without its decimal point.
_DOTLESS_RE = re.compile(r"(?<![\d.])(3[5-9]\d|4[0-2]\d)(?![\d.])")
_CORRECTION_RE = re.compile(r"不是\s*\d{2}(?:\.\d)?\s*[，,]?\s*是\s*\d{2}")
_PLEA_ITEMS = frozenset({"groceries", "garbage"})
_DONE = frozenset({"了", "啦", "喽", "咯"})
_PROXY_WORDS = frozenset({"替", "代报", "帮她报", "帮他报", "报一下", "报下", "报个", "也报一下", "帮报", "代", "代为"})


@dataclass(frozen=True, slots=True)
class Person:
    """One person's reading in a message that reports several people."""

    who: str
    temperature: float | None = None
    fever: bool = False
    symptoms: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"who": self.who, "temperature": self.temperature, "fever": self.fever, "symptoms": list(self.symptoms)}


@dataclass(frozen=True, slots=True)
class ParseResult:
    """The facts one message states (see CONTRACT.md for the first six)."""

    checkin: str | None = None
    fever: bool = False
    temperature: float | None = None
    symptoms: tuple[str, ...] = ()
    request: str | None = None
    emergency: bool = False
    concerns: str | None = None
    address: str | None = None
    items: tuple[str, ...] = ()
    unclear: bool = False
    correction: bool = False
    persons: tuple[Person, ...] = field(default=())
    subjects: tuple[Subject, ...] = field(default=())
    uncertain: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkin": self.checkin,
            "fever": self.fever,
            "temperature": self.temperature,
            "symptoms": list(self.symptoms),
            "request": self.request,
            "emergency": self.emergency,
            "concerns": self.concerns,
            "address": self.address,
            "items": list(self.items),
            "unclear": self.unclear,
            "correction": self.correction,
            "persons": [p.to_dict() for p in self.persons],
            "subjects": [p.to_dict() for p in self.subjects],
            "uncertain": self.uncertain,
        }


_SYMPTOM_ORDER = (
    "fever", "cough", "sore_throat", "fatigue", "breathing", "diarrhea", "taste_smell", "headache",
    "runny_nose", "muscle_ache", "chills", "vomiting",
)


def parse(text: str, *, fever_at: float = DEFAULT_FEVER_AT) -> ParseResult:
    """Read one message.  Never raises: anything unreadable is an empty record."""
    try:
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        return _parse(text, float(fever_at))
    except Exception:  # noqa: BLE001 - a chat message must never crash the bot
        return ParseResult(unclear=True)


@dataclass(slots=True)
class _Span:
    """What the counted clauses say, gathered while walking them."""

    symptoms: set[str] = field(default_factory=set)
    fever_words: list[int] = field(default_factory=list)
    resolved_at: int = -1
    recovered: bool = False  # well again, said so after the fever ended ("已经好了", "…今天体温正常")
    unwell: bool = False
    safe: bool = False
    subject: str | None = None
    text: str = ""


def _parse(text: str, fever_at: float, *, whole: bool = True) -> ParseResult:
    norm = normalize(text)
    body = _QUOTE_RE.sub("", norm.text, count=1) if "- -" in norm.text else norm.text
    if not body.strip():
        return ParseResult()
    if is_lone_number(body):
        return ParseResult(unclear=True, uncertain=True)

    clauses = build_clauses(body, cut(body))
    readings = find_readings(body)
    address = find_address(body)
    anchors = anchors_in(body)
    fever_reading = bool(readings) and any(r.value >= fever_at for r in readings)
    flags = _message_flags(clauses)
    laugh = norm.laugh or flags.laugh
    if flags.disposable:
        _dispose(body, clauses)
    if readings and "算" in body:
        readings = _not_rule_questions(body, clauses, readings)
        fever_reading = any(r.value >= fever_at for r in readings)
    notice = is_notice(clauses, fever_reading) if flags.notice else False
    rumour = rumour_clauses(clauses) if flags.rumour else set()
    proxy = flags.proxy
    mundane = flags.mundane
    health = flags.health or fever_reading
    # The sentence-wide exclusions need a sentence's tokens; most messages have
    # no word they look for, and skip building them.
    sentences = _sentences(clauses) if flags.supposes or flags.long_ago or _SCREEN_RE.search(body) else None

    span = _Span(text=body)
    emergency = False
    emergency_subject: str | None = None
    emergency_anchored = False  # the person in an emergency is pinned down by an address or a name
    counted: list[Clause] = []
    subject_of: list[tuple[str | None, tuple[str | None, str | None]]] = []  # per counted clause: who, (address, name)
    label: tuple[str | None, str | None] = (None, None)
    eligible: list[Clause] = []  # not a notice, rumour or supposition: may hold a request
    subject: str | None = None
    anchor: Anchor | None = None
    sentence = -1
    first_subject: str | None = None
    named_subject: str | None = None
    counted_kinds: set[str] = set()  # every kind in a counted clause, to skip whole steps below
    doubt = False  # a fever or emergency proposed and set aside for a doubtful reason
    joking = laugh and not readings
    for i, clause in enumerate(clauses):
        kinds = clause.kinds
        if clause.sentence != sentence:
            sentence = clause.sentence
            subject = None
            anchor = None
            label = (None, None)
            if sentences is not None:
                sentence_tokens, sentence_supposes, screen, long_ago_here = sentences[sentence]
            else:
                sentence_tokens, sentence_supposes, screen, long_ago_here = [], False, False, False
        here = [a for a in anchors if clause.start <= a.start < clause.end] if anchors else []
        if Kind.PERSON in kinds or Kind.INDEFINITE in kinds or here:
            before = subject
            subject, named = _clause_subject(clause, subject, here)
            # A clause that goes on about the same person ("她低烧37.5") keeps
            # whom they were pinned to; anyone new is pinned anew or not at all.
            anchor = here[-1] if here else (anchor if subject == before and not named else None)
            if here:
                at = next((a.text for a in here if a.kind == "address"), None)
                name = next((a.text for a in here if a.kind == "name"), None)
                if at is None and name is not None and label[1] is not None and name != label[1]:
                    # Another named person: the address written for the last one is not theirs.
                    label = (None, name)
                else:
                    label = (at or label[0], name or (label[1] if not named else None))
        else:
            named = False  # no person word: the subject carries over unchanged
        # A reading next to a named person or an address outweighs a notice or
        # rumour word elsewhere ("隔离户李某 下午37.6，通知家属了").
        definite = anchor is not None and _has_reading(clause, readings)
        # Named exclusions that void a clause for everything (rules, rumours, suppositions).
        if notice and not definite:
            continue
        if (
            exclusions.hearsay(i, rumour)
            and not (definite and not _holds_rumour(clause))
            and not (Kind.EMERGENCY in kinds and exclusions.threatened_harm(clause))
        ):
            continue
        if (Kind.HYPOTHETICAL in kinds or Kind.NOTICE in kinds or sentence_supposes) and exclusions.hypothetical(
            clause, sentence_supposes
        ):
            continue
        eligible.append(clause)
        if long_ago_here and exclusions.long_ago([t for t in sentence_tokens if t.start < clause.end]):
            continue
        if Kind.ITEM in kinds and _runs_hot(clause):
            subject = "thing"  # "这手机发热太严重了，玩一会就烫手"
        if screen or exclusions.animal(subject) or subject == "thing":
            continue
        if (Kind.EMERGENCY in kinds or Kind.CRY in kinds) and emergency_in(clause, laugh, mundane, health):
            emergency = True
            # Only a sign in someone (not a bare cry, "救命！着火了") makes the
            # message a health report about them.
            if emergency_subject is None and any(
                t.kind is Kind.EMERGENCY and not t.negated and t.value != HARM for t in clause.tokens
            ):
                emergency_subject = subject or "self"
                emergency_anchored = anchor is not None
        if subject == "indefinite" or (subject == "other" and anchor is None):
            # Somebody unnamed ("有人发烧"): news, not a report; with an address it may be one.
            doubt |= bool(here or anchor) and _proposes(clause, readings, fever_at)
            continue
        if subject == "neighbour" and not proxy and not _has_finding(clause) and not _has_reading(clause, readings):
            continue
        if clause.question and not named and not here and not _has_reading(clause, readings):
            doubt |= _proposes(clause, readings, fever_at)
            continue
        counted.append(clause)
        subject_of.append((subject, label if anchor is not None else (None, None)))
        counted_kinds |= kinds
        if first_subject is None and _has_finding(clause):
            first_subject = subject
        if named_subject is None and subject is not None:
            named_subject = subject
        if not kinds.isdisjoint(_GATHER_KINDS):
            _gather(clause, span, joking)

    counted_readings = (
        [r for r in readings if any(c.start <= r.start < c.end for c in counted)] if readings and counted else []
    )
    if Kind.PAST in counted_kinds:
        _resolve_by_time(counted, counted_readings, span, fever_at)
    temperature = max((r.value for r in counted_readings), default=None) if counted_readings else None
    fever = bool(span.fever_words) and any(pos > span.resolved_at for pos in span.fever_words)
    if not fever and counted_readings:
        fever = any(r.value >= fever_at and r.start > span.resolved_at for r in counted_readings)
    symptoms = set(span.symptoms)
    symptoms.discard("fever")
    if fever:
        symptoms.add("fever")

    own_emergency = emergency_subject in ("self", "family", "other") or (
        emergency_subject == "neighbour" and (proxy or emergency_anchored)
    )
    recovered = span.recovered and not fever and not span.unwell and not own_emergency
    if symptoms or span.unwell or (span.resolved_at >= 0 and not recovered) or own_emergency:
        checkin: str | None = "abnormal"
    elif span.safe or counted_readings or recovered:
        checkin = "safe"
    else:
        checkin = None

    request, items = find_request(eligible)
    concerns = None
    if checkin is not None or emergency:
        who = (first_subject or named_subject) if checkin is not None else emergency_subject
        who = "other" if who == "indefinite" else who
        concerns = who if who in ("self", "family", "neighbour", "other") else ("self" if checkin else None)
    unclear = checkin is None and temperature is None and bool(_DOTLESS_RE.search(body)) and not request
    correction = flags.correction or ("不是" in body and bool(_CORRECTION_RE.search(body)))
    persons = _persons(counted, counted_readings, fever_at) if Kind.PERSON in counted_kinds else ()
    fields = {
        "checkin": checkin,
        "fever": fever,
        "temperature": temperature,
        "symptoms": tuple(s for s in _SYMPTOM_ORDER if s in symptoms),
        "request": request,
        "emergency": emergency,
        "concerns": concerns,
        "address": address,
        "items": tuple(items),
        "unclear": unclear,
        "correction": correction,
        "persons": persons,
        "uncertain": (doubt and not fever and not emergency) or unclear,
    }
    if whole and anchors and "\n" in body:
        lines = list_lines(body, anchors)
        if lines:
            listed = _read_list(body, lines, ParseResult(**fields), fever_at)
            if listed is not None:
                return listed
    if whole and (checkin is not None or fever or emergency):
        fields["subjects"] = _subjects(fields, counted, subject_of, counted_readings, fever_at)
    return ParseResult(**fields)


def _dispose(body: str, clauses: list[Clause]) -> None:
    """Token-level named exclusions: a proposal they dispose of loses its kind."""
    by_sentence: dict[int, list[Token]] = {}
    for clause in clauses:
        by_sentence.setdefault(clause.sentence, []).extend(clause.tokens)
        for tok in clause.tokens:
            if exclusions.seen_not_called(clause, tok) or (
                tok.kind is Kind.EMERGENCY and exclusions.reached_later(tok, body)
            ):
                tok.kind = None
    for tokens in by_sentence.values():
        if exclusions.cooped_up(tokens):
            for tok in tokens:
                if (tok.kind in (Kind.SYMPTOM, Kind.EMERGENCY) and tok.value == "breathing") or (
                    tok.kind is Kind.UNWELL and tok.word == "难受"
                ):
                    tok.kind = None


def _not_rule_questions(body: str, clauses: list[Clause], readings: list[Reading]) -> list[Reading]:
    """Drop the figures that a question asks about against the rule ("37度算吗")."""
    out = []
    for r in readings:
        clause = next((c for c in clauses if c.start <= r.start < c.end), None)
        if clause is None or not exclusions.rule_question(body, r.start, r.end, clause):
            out.append(r)
    return out


# A thing that runs hot or works fine: "手机发热", "暖气片不发热了", "暖气挺好的".
_THING_STATES = frozenset({Kind.FEVER, Kind.BURN, Kind.SAFE, Kind.RESOLVED})


def _runs_hot(clause: Clause) -> bool:
    toks = clause.tokens
    for i, tok in enumerate(toks):
        if tok.kind is Kind.ITEM and tok.value == "other":
            for nxt in toks[i + 1 : i + 3]:
                if nxt.kind in _THING_STATES:
                    return True
                if nxt.kind is not Kind.NEG:
                    break
    return False


def _sentences(clauses: list[Clause]) -> dict[int, tuple[list[Token], bool, bool, bool]]:
    """Per sentence: its tokens, whether it is a supposed question, told of a
    screen or a drill, and whether it speaks of long ago (looked at per clause)."""
    grouped: dict[int, list[Clause]] = {}
    for clause in clauses:
        grouped.setdefault(clause.sentence, []).append(clause)
    out = {}
    for n, group in grouped.items():
        tokens = [t for c in group for t in c.tokens]
        kinds = set().union(*(c.kinds for c in group))
        out[n] = (
            tokens,
            exclusions.supposes(group),
            exclusions.on_screen(tokens),
            Kind.LONG_AGO in kinds,
        )
    return out


def _holds_rumour(clause: Clause) -> bool:
    return Kind.RUMOUR in clause.kinds


def _proposes(clause: Clause, readings: list[Reading], fever_at: float) -> bool:
    """The broad detector: a fever or emergency word not denied, or a fever-level reading."""
    if not clause.kinds.isdisjoint(_PROPOSING_KINDS) and any(
        t.kind in _PROPOSING_KINDS and not exclusions.negated(t) for t in clause.tokens
    ):
        return True
    return any(clause.start <= r.start < clause.end and r.value >= fever_at for r in readings)


_PROPOSING_KINDS = frozenset({Kind.FEVER, Kind.EMERGENCY, Kind.CRY})
# Any word that exclusions.on_screen looks for.
_SCREEN_RE = re.compile("|".join(sorted(MEDIA_WORDS, key=len, reverse=True)))


def _read_list(body: str, lines: list[tuple[int, int]], whole: ParseResult, fever_at: float) -> ParseResult | None:
    """A 接龙 or a leader's list: each line that names a household is read alone,
    and the message says what any of them says (fever if any line, the highest reading)."""
    subjects: list[Subject] = []
    parts: list[ParseResult] = []
    for start, end in lines:
        line = body[start:end]
        part = _parse(line, fever_at, whole=False)
        if part.checkin is None and not part.fever and not part.emergency and part.temperature is None:
            continue
        parts.append(part)
        found = anchors_in(line)
        subjects.append(
            Subject(
                who=part.concerns if part.concerns in ("self", "family", "neighbour") else "other",
                address=next((a.text for a in found if a.kind == "address"), None),
                name=next((a.text for a in found if a.kind == "name"), None),
                temperature=part.temperature,
                fever=part.fever,
                symptoms=part.symptoms,
            )
        )
    if len(parts) < 2:
        return None
    subjects = merge_subjects(subjects)
    fever = whole.fever or any(p.fever for p in parts)
    temps = [p.temperature for p in (whole, *parts) if p.temperature is not None]
    symptoms = set(whole.symptoms).union(*(p.symptoms for p in parts))
    symptoms.discard("fever")
    if fever:
        symptoms.add("fever")
    abnormal = whole.checkin == "abnormal" or any(p.checkin == "abnormal" for p in parts)
    return replace(
        whole,
        checkin="abnormal" if abnormal else (whole.checkin or "safe"),
        fever=fever,
        temperature=max(temps) if temps else None,
        symptoms=tuple(s for s in _SYMPTOM_ORDER if s in symptoms),
        emergency=whole.emergency or any(p.emergency for p in parts),
        subjects=tuple(subjects),
        uncertain=whole.uncertain and not fever,
    )


def _subjects(
    result: dict[str, Any],
    counted: list[Clause],
    subject_of: list[tuple[str | None, tuple[str | None, str | None]]],
    readings: list[Reading],
    fever_at: float,
) -> tuple[Subject, ...]:
    """One entry per person reported on, in the order they are first named."""
    groups: dict[tuple[str | None, str | None, str | None], list[Clause]] = {}
    for clause, (who, (address, name)) in zip(counted, subject_of, strict=True):
        known = who if who in ("self", "family", "neighbour", "other") else None
        groups.setdefault((known, address, name), []).append(clause)
    real = [k for k in groups if k != (None, None, None)]
    if len(real) <= 1:
        # One person, or nobody named: the message's own findings are theirs.
        who, address, name = real[0] if real else (None, None, None)
        who = who or result["concerns"] or "unknown"
        return (Subject(who, address, name, result["temperature"], result["fever"], result["symptoms"]),)
    out: list[Subject] = []
    for key in real:
        who, address, name = key
        group = groups[key]
        here = [r.value for r in readings if any(c.start <= r.start < c.end for c in group)]
        words = {t.value for c in group for t in c.tokens if t.kind in (Kind.SYMPTOM, Kind.EMERGENCY) and t.value and not t.negated}
        fever_here = result["fever"] and (
            any(v >= fever_at for v in here)
            or any(t.kind is Kind.FEVER and not t.negated for c in group for t in c.tokens)
        )
        syms = tuple(s for s in result["symptoms"] if s in words or (s == "fever" and fever_here))
        out.append(Subject(who or result["concerns"] or "unknown", address, name, max(here) if here else None, fever_here, syms))
    return tuple(merge_subjects(out))


@dataclass(slots=True)
class _Flags:
    laugh: bool = False
    notice: bool = False
    rumour: bool = False
    proxy: bool = False
    mundane: bool = False
    health: bool = False
    correction: bool = False
    supposes: bool = False
    long_ago: bool = False
    disposable: bool = False  # a word that a token-level exclusion looks at


# Emergency words a token-level exclusion may dispose of (see _dispose).
_DISPOSABLE = frozenset({"救护车", "敲门没人应", "敲门不应", "敲门没反应", "敲门也没人应", "敲门没人开", "没人应门", "叫门不应", "打电话也不接", "没动静"})


_HEALTH_KINDS = frozenset({Kind.SYMPTOM, Kind.FEVER, Kind.EMERGENCY})


def _message_flags(clauses: list[Clause]) -> _Flags:
    """Message-wide facts, in one walk over the tokens that carry a kind."""
    flags = _Flags()
    for clause in clauses:
        kinds = clause.kinds
        if not kinds:
            continue
        flags.notice |= Kind.NOTICE in kinds
        flags.rumour |= Kind.RUMOUR in kinds
        flags.mundane |= Kind.MUNDANE in kinds
        if Kind.ITEM in kinds and not flags.mundane:
            # "救命，家里没菜了": a cry over food or rubbish is a plea, not a life at risk.
            flags.mundane = any(t.kind is Kind.ITEM and t.value in _PLEA_ITEMS for t in clause.tokens)
        flags.correction |= Kind.CORRECTION in kinds
        flags.supposes |= Kind.HYPOTHETICAL in kinds or Kind.IRREALIS in kinds or Kind.NOTICE in kinds
        flags.long_ago |= Kind.LONG_AGO in kinds
        if not flags.disposable and (Kind.EMERGENCY in kinds or Kind.CRY in kinds or Kind.SYMPTOM in kinds or Kind.UNWELL in kinds):
            flags.disposable = any(t.word in _DISPOSABLE or "憋" in t.word or "闷" in t.word for t in clause.tokens)
        if Kind.HYPERBOLE in kinds:
            flags.laugh |= has_laugh([clause])
        if Kind.PROXY in kinds or Kind.ASK in kinds:
            flags.proxy |= any(t.word in _PROXY_WORDS for t in clause.tokens)
        if not flags.health and not kinds.isdisjoint(_HEALTH_KINDS):
            flags.health = any(t.kind in _HEALTH_KINDS and not t.negated for t in clause.tokens)
    return flags


def _clause_subject(clause: Clause, inherited: str | None, anchors: list[Anchor]) -> tuple[str | None, bool]:
    """Who this clause is about, and whether it names a self/family person.

    "indefinite" is somebody unnamed (有人, 有个); a name or an address in the
    clause (王某, 3号楼) makes whoever it is a definite "other"."""
    subject = inherited
    named = False
    names = [a for a in anchors if a.kind == "name"]
    for tok in clause.tokens:
        if tok.kind is Kind.INDEFINITE:
            if any(a.start <= tok.start < a.end for a in names):
                continue  # the 某 of 王某
            # "3号楼有个老人": an address, but still nobody named; a household's
            # own address ("有一户发热：1单元202") or a demonstrative with an
            # address ("11号楼…的那户") pins them down.
            if names or any(_pins_down(a, tok) for a in anchors):
                return "other", named
            return "indefinite", named
        if tok.kind is Kind.PERSON:
            if tok.value == "pronoun":
                continue
            if tok.value in ("self", "family"):
                named = True
            # "俺妈", "我家老伴": a family word after 俺/我 names whom it is about;
            # "我家狗狗", "我家邻居": so does a pet or a neighbour after one's own.
            if (
                subject is inherited
                or (subject == "self" and tok.value == "family")
                or (subject in ("self", "family") and tok.value in ("pet", "neighbour") and subject is not inherited)
            ):
                subject = tok.value
    # A name makes whoever it is a definite other; an address alone may be the
    # sender's own ("3-2-501 36.5"), and leaves the subject as it was.
    if names and subject is inherited and subject in (None, "indefinite", "other"):
        subject = "other"
    return subject, named


_DEMONSTRATIVES = frozenset({"那户", "那家", "那个", "这户", "这家"})
_ROOM_RE = re.compile(r"\d{3,4}\s*(?:室|号)?$")


def _pins_down(anchor: Anchor, tok: Token) -> bool:
    """Whether an address pins an unnamed person down: one that gives a room
    (a household), or any address before a demonstrative ("11号楼…那户")."""
    if anchor.kind != "address":
        return False
    return bool(_ROOM_RE.search(anchor.text)) or (tok.word in _DEMONSTRATIVES and anchor.end <= tok.start)


def _resolve_by_time(counted: list[Clause], readings: list[Reading], span: _Span, fever_at: float) -> None:
    """"昨天烧到38.5，今天36.8了": a normal reading now ends yesterday's fever."""
    past_at = next((t.start for c in counted if Kind.PAST in c.kinds for t in c.tokens if t.kind is Kind.PAST), None)
    if past_at is None:
        return
    # "昨天发烧今天好了": a "now" followed by a word of being well, with no
    # fever after it, ends the fever told of before.
    for clause in counted:
        if Kind.NOW not in clause.kinds or clause.end <= past_at:
            continue
        toks = clause.tokens
        for i, tok in enumerate(toks):
            if tok.kind is not Kind.NOW or tok.start <= past_at:
                continue
            rest = toks[i + 1 :]
            well = any(
                (t.kind is Kind.SAFE and not t.negated)
                or (t.word == "好" and j + 1 < len(rest) and rest[j + 1].word in _DONE)
                for j, t in enumerate(rest)
            )
            feverish = any(t.kind is Kind.FEVER and not t.negated for t in rest)
            if well and not feverish and all(r.value < fever_at for r in readings if r.start >= tok.start):
                span.resolved_at = max(span.resolved_at, tok.start)
                span.fever_words = [p for p in span.fever_words if p >= tok.start]
                return
    for clause in counted:
        if clause.start <= past_at or Kind.NOW not in clause.kinds or Kind.FEVER in clause.kinds:
            continue
        here = [r for r in readings if clause.start <= r.start < clause.end]
        later = [r for r in readings if r.start >= clause.start]
        if here and all(r.value < fever_at for r in later):
            span.resolved_at = max(span.resolved_at, clause.start)
            span.fever_words = [p for p in span.fever_words if p >= clause.start]
            return


_FINDING_KINDS = frozenset({Kind.SYMPTOM, Kind.FEVER, Kind.EMERGENCY, Kind.UNWELL})
# The kinds _gather acts on (NEG for a form line "症状：无"); a clause with none
# of them leaves the span as it was.
_GATHER_KINDS = frozenset({Kind.SYMPTOM, Kind.FEVER, Kind.EMERGENCY, Kind.UNWELL, Kind.RESOLVED, Kind.SAFE, Kind.NEG, Kind.TALLY})


def _has_finding(clause: Clause) -> bool:
    if clause.kinds.isdisjoint(_FINDING_KINDS):  # the kinds are a superset of the tokens' kinds
        return False
    return any(t.kind in _FINDING_KINDS and not t.negated for t in clause.tokens)


def _has_reading(clause: Clause, readings: list[Reading]) -> bool:
    return any(clause.start <= r.start < clause.end for r in readings)


def _gather(clause: Clause, span: _Span, joking: bool) -> None:
    limit = suppressed_from(clause)
    toks = clause.tokens
    thing_seen = False
    for i, tok in enumerate(toks):
        kind = tok.kind
        if kind is Kind.ITEM and tok.value == "other":
            # "暖气片不发热了", "手机发烫": a thing, not a body, runs hot.
            thing_seen = True
        if kind is None or i >= limit and kind in (Kind.SYMPTOM, Kind.EMERGENCY, Kind.FEVER, Kind.UNWELL):
            continue
        if thing_seen and kind in (Kind.FEVER, Kind.RESOLVED):
            continue
        if kind is Kind.SYMPTOM:
            if joking:  # "追剧追到头疼😂"
                continue
            if tok.negated or exclusions.zero_count(span.text, tok):
                span.safe = True
            else:
                span.symptoms.add(tok.value)
        elif kind is Kind.EMERGENCY:
            if not tok.negated and tok.value and tok.value != HARM:
                span.symptoms.add(tok.value)
        elif kind is Kind.TALLY:
            # "暂无发热人员", "发热人员：0": nobody; otherwise a category, nobody's fever.
            if tok.negated or exclusions.zero_count(span.text, tok):
                span.safe = True
        elif kind is Kind.FEVER:
            if tok.negated or exclusions.zero_count(span.text, tok):
                span.safe = True
            else:
                span.fever_words.append(tok.start)
        elif kind is Kind.RESOLVED:
            if tok.negated:  # "还没退烧": still a fever
                span.fever_words.append(tok.start)
            else:
                span.resolved_at = max(span.resolved_at, tok.start)
                span.recovered |= tok.value == "well"
        elif kind is Kind.UNWELL:
            if tok.negated:
                span.safe = True
            else:
                span.unwell = True
        elif kind is Kind.SAFE:
            if tok.negated:  # "体温不正常"
                span.unwell = True
            else:
                span.safe = True
                span.recovered |= span.resolved_at >= 0
    # "症状：无", "其他：无": a form line answered with a negation.
    if len(toks) >= 3 and toks[-1].kind is Kind.NEG and toks[-2].word in (":", "："):
        span.safe = True


def _persons(counted: list[Clause], readings: list[Reading], fever_at: float) -> tuple[Person, ...]:
    """Per-person readings: each reading goes to the person named just before it."""
    order: list[str] = []
    temps: dict[str, float] = {}
    syms: dict[str, set[str]] = {}
    feverish: dict[str, bool] = {}
    last_named: str | None = None
    for clause in counted:
        named_here: str | None = None
        events: list[tuple[int, str, Any]] = []
        for tok in clause.tokens:
            if tok.kind is Kind.PERSON and tok.value in ("self", "family", "neighbour"):
                events.append((tok.start, "who", tok.word))
            elif tok.kind in (Kind.SYMPTOM, Kind.EMERGENCY) and tok.value and not tok.negated:
                events.append((tok.start, "sym", tok.value))
            elif tok.kind is Kind.FEVER and not tok.negated:
                events.append((tok.start, "fev", True))
        for r in readings:
            if clause.start <= r.start < clause.end:
                events.append((r.start, "temp", r.value))
        events.sort(key=lambda e: e[0])
        if not any(e[1] != "who" for e in events):
            # A clause that only names someone ("孩子 37.4"): the next clause is theirs.
            who_only = [e[2] for e in events if e[1] == "who"]
            last_named = who_only[-1] if who_only else None
            continue
        for _, what, val in events:
            if what == "who":
                named_here = val
                continue
            who = named_here or last_named
            if who is None:
                continue
            if who not in order:
                order.append(who)
            if what == "temp":
                temps[who] = max(temps.get(who, val), val)
                feverish[who] = feverish.get(who, False) or val >= fever_at
            elif what == "sym":
                syms.setdefault(who, set()).add(val)
            elif what == "fev":
                feverish[who] = True
        last_named = None
    return tuple(
        Person(
            who=w,
            temperature=temps.get(w),
            fever=feverish.get(w, False),
            symptoms=tuple(s for s in _SYMPTOM_ORDER if s in syms.get(w, ())),
        )
        for w in order
    )


warm_up()
