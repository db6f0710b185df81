"""The parser's own jieba tokenizer, loaded once.

A private ``jieba.Tokenizer`` keeps our domain words out of the global
dictionary that other code in the process may use.  HMM new-word discovery is
off: every word the parser cares about is in the dictionary, and without the
HMM pass segmentation costs less than a bare ``jieba.lcut``.
"""

from __future__ import annotations

import logging
import threading
from math import log
from pathlib import Path

import jieba

from nlp.homophones import Homophones, build_variants
from nlp.lexicon import LEXICON, Kind

USERDICT = Path(__file__).parent / "data" / "userdict.txt"

# Frequent enough that a domain phrase beats any split of it into smaller words.
_DOMAIN_FREQ = 200_000

# The words whose sound-alike slips are read as them (see nlp/homophones.py),
# and parts of phrases that are typed alone ("呼吸困南").
_SOUND_ALIKE_KINDS = frozenset({Kind.FEVER, Kind.SYMPTOM, Kind.EMERGENCY, Kind.CRY, Kind.RESOLVED})
_SOUND_ALIKE_EXTRA = ("困难", "呼吸", "体温", "咳嗽", "抽搐", "发烧", "嗓子", "喉咙", "嘴唇", "发青", "发紫", "寒热")

_lock = threading.Lock()
_tokenizer: jieba.Tokenizer | None = None
_homophones: Homophones | None = None
_logtotal = 0.0


def warm_up() -> jieba.Tokenizer:
    """Build the tokenizer and load our dictionary; later calls are free."""
    global _tokenizer
    if _tokenizer is not None:
        return _tokenizer
    with _lock:
        if _tokenizer is None:
            # jieba logs "Building prefix dict..." at DEBUG on its own handler.
            logging.getLogger("jieba").setLevel(logging.WARNING)
            jieba.setLogLevel(logging.WARNING)
            tk = jieba.Tokenizer()
            tk.initialize()
            if USERDICT.exists():
                tk.load_userdict(str(USERDICT))
            for word in LEXICON:
                # Longer phrases get a higher weight so that, where two domain
                # words overlap, the longer reading wins.
                tk.add_word(word, freq=_DOMAIN_FREQ * max(1, len(word)))
            health = [w for w, (kind, _) in LEXICON.items() if kind in _SOUND_ALIKE_KINDS]
            variants = build_variants([*health, *_SOUND_ALIKE_EXTRA], tk.FREQ, keep=LEXICON)
            global _homophones, _logtotal
            _homophones = Homophones(variants, tk.FREQ, LEXICON)
            _logtotal = log(tk.total)
            _tokenizer = tk
    return _tokenizer


def homophones() -> Homophones:
    """The sound-alike table, built with the tokenizer."""
    if _homophones is None:
        warm_up()
    assert _homophones is not None
    return _homophones


# jieba's own block and whitespace patterns, so that cut() splits exactly as
# ``Tokenizer.lcut(text, HMM=False)`` does.
_RE_HAN = jieba.re_han_default
_RE_SKIP = jieba.re_skip_default
_ENG = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _cut_block(s: str, freq: dict[str, int], logtotal: float, out: list[str]) -> None:
    """jieba's ``__cut_DAG_NO_HMM`` on one block: the same words.  jieba builds
    the DAG of dictionary words forward, then the best route backward; each
    position's words depend only on the text, and its route only on positions
    after it, so one backward pass does both, with no DAG kept at all."""
    n = len(s)
    get = freq.get
    score = [0.0] * (n + 1)
    nxt = [0] * n
    for k in range(n - 1, -1, -1):
        # The best of (score, end) over the words starting at k, as jieba's max() of tuples.
        best = -1e300
        best_x = -1
        i = k
        frag = s[k]
        while True:
            f = get(frag)
            if f is None:
                break
            if f:
                sc = log(f) - logtotal + score[i + 1]
                if sc > best or (sc == best and i > best_x):
                    best, best_x = sc, i
            i += 1
            if i >= n:
                break
            frag = s[k : i + 1]
        if best_x < 0:  # no word starts here: the character alone (jieba: log(1) - logtotal)
            best, best_x = -logtotal + score[k + 1], k
        score[k] = best
        nxt[k] = best_x
    x = 0
    buf = ""
    while x < n:
        y = nxt[x] + 1
        if y - x == 1 and s[x] in _ENG:
            buf += s[x]
        else:
            if buf:
                out.append(buf)
                buf = ""
            out.append(s[x:y])
        x = y
    if buf:
        out.append(buf)


def cut(text: str) -> list[str]:
    """Segment ``text`` with the domain dictionary: exactly
    ``Tokenizer.lcut(text, HMM=False)`` (tests/test_nlp_props.py checks it)."""
    tk = _tokenizer or warm_up()
    freq = tk.FREQ
    logtotal = _logtotal
    out: list[str] = []
    for blk in _RE_HAN.split(text):
        if not blk:
            continue
        if _RE_HAN.match(blk):
            _cut_block(blk, freq, logtotal, out)
        else:
            for piece in _RE_SKIP.split(blk):
                if _RE_SKIP.match(piece):
                    out.append(piece)
                else:
                    out.extend(piece)
    return out
