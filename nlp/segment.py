"""The parser's own jieba tokenizer, loaded once.

A private ``jieba.Tokenizer`` keeps our domain words out of the global
dictionary that other code in the process may use.  HMM new-word discovery is
off: every word the parser cares about is in the dictionary, and without the
HMM pass segmentation costs less than a bare ``jieba.lcut``.
"""

from __future__ import annotations

import logging
import threading
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
            global _homophones
            _homophones = Homophones(variants, tk.FREQ, LEXICON)
            _tokenizer = tk
    return _tokenizer


def homophones() -> Homophones:
    """The sound-alike table, built with the tokenizer."""
    if _homophones is None:
        warm_up()
    assert _homophones is not None
    return _homophones


def cut(text: str) -> list[str]:
    """Segment ``text`` with the domain dictionary (one jieba call)."""
    tk = _tokenizer or warm_up()
    return tk.lcut(text, HMM=False)
