"""Sound-alike slips of the health vocabulary: 发少 → 发烧, 咳数 → 咳嗽, 救明 → 救命.

Speech-to-text and pinyin input both produce a character that *sounds* like
the intended one.  For every health word of the lexicon we list the spellings
that differ from it in exactly one character whose reading is the same or a
common confusion of it (s/sh, z/zh, c/ch, n/l, -n/-ng, ou/u), using the
readings shipped by ``pypinyin``.  A message is then scanned for those
spellings and each is replaced by its word, keeping the length so that every
offset stays valid.

Two guards keep ordinary words from being swallowed: a spelling that is itself
a word of jieba's dictionary is never listed (发愣 stays 发愣), and a spelling
whose first or last character belongs to a common word with its neighbour in
the message is left alone (头发少 is thin hair, 抽处理 is not 抽搐).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

# Readings that speakers and input methods confuse: fold each to one key.
_INITIAL_FOLDS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"))
_FINAL_FOLDS = (("ang", "an"), ("eng", "en"), ("ing", "in"), ("ou", "u"), ("uo", "o"))
# Function characters: a word with one of these neither stands in for another
# (快就 is not 快救) nor is recognised by one alone (有谈 is not 有痰).
_FUNCTION = frozenset("了的得着过到儿吗呢啊吧么有老还一点在又会要不没很挺好都也就是个直再太真")
# A neighbour pair this frequent in jieba's dictionary is a word of its own.
_COMMON_PAIR = 500
# 发骚 is a word of its own (rude); normalize.py reads it as 发烧 only before a reading.
_NEVER_ALIKE = frozenset("骚")
# Only characters at least this frequent as a jieba word stand in for another:
# rare characters are not what an input method offers first.
_COMMON_CHAR = 50
_CJK_RE = re.compile(r"^[\u4e00-\u9fff]{2,4}$")


def _toneless(reading: str) -> str:
    decomposed = unicodedata.normalize("NFD", reading)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).replace("ü", "v")


def _fold(syllable: str) -> str:
    for a, b in _INITIAL_FOLDS:
        if syllable.startswith(a):
            syllable = b + syllable[len(a) :]
            break
    for a, b in _FINAL_FOLDS:
        if syllable.endswith(a):
            syllable = syllable[: -len(a)] + b
            break
    return syllable


def build_variants(words: Iterable[str], freq: Mapping[str, int], keep: Iterable[str] = ()) -> dict[str, str]:
    """Map each sound-alike spelling of ``words`` to the word (see the module doc);
    no spelling in ``keep`` (the rest of the lexicon) is listed."""
    from pypinyin.pinyin_dict import pinyin_dict  # a large table: loaded once, here

    keys_of: dict[str, set[str]] = {}
    chars_of: dict[str, list[str]] = {}
    for code, readings in pinyin_dict.items():
        ch = chr(code)
        if not "\u4e00" <= ch <= "\u9fff" or freq.get(ch, 0) < _COMMON_CHAR:
            continue
        keys = {_fold(_toneless(r)) for r in readings.split(",")}
        keys_of[ch] = keys
        for key in keys:
            chars_of.setdefault(key, []).append(ch)

    variants: dict[str, str] = {}
    words = list(words)
    taken = set(words) | set(keep)
    for word in words:
        if not _CJK_RE.match(word) or word[-1] in _FUNCTION or word[0] in "不没":
            continue
        for i, ch in enumerate(word):
            rest = word[:i] + word[i + 1 :]
            if ch in _FUNCTION or all(c in _FUNCTION for c in rest):
                continue
            keys = keys_of.get(ch)
            if keys is None:
                # A character too rare for the table still has its own readings.
                keys = {_fold(_toneless(r)) for r in pinyin_dict.get(ord(ch), "").split(",") if r}
            for key in keys:
                for alike in chars_of.get(key, ()):
                    if alike == ch or alike in _FUNCTION or alike in _NEVER_ALIKE:
                        continue
                    spelling = word[:i] + alike + word[i + 1 :]
                    if spelling in taken or freq.get(spelling, 0) > 0:
                        continue
                    # 没反映 is not 没反应: the changed character must not make a
                    # common word with its neighbour inside the spelling.
                    pairs = (spelling[max(0, i - 1) : i + 1], spelling[i : i + 2])
                    if len(spelling) > 2 and any(len(p) == 2 and freq.get(p, 0) >= _COMMON_PAIR for p in pairs):
                        continue
                    # Two words may share a spelling; the first listed keeps it.
                    variants.setdefault(spelling, word)
    return variants


class Homophones:
    """Replace sound-alike spellings in a text by the lexicon word they stand for."""

    def __init__(self, variants: dict[str, str], freq: Mapping[str, int], words: Iterable[str] = ()) -> None:
        self._variants = variants
        self._freq = freq
        # Lexicon words that hold a listed spelling ("嗓子发干" holds 发干, a
        # spelling of 发绀): where one of them is written out, it is kept.
        self._holders: dict[str, tuple[str, ...]] = {}
        for word in words:
            for spelling in {word[a:b] for a in range(len(word)) for b in range(a + 2, len(word) + 1)}:
                if spelling in variants and spelling != word:
                    self._holders[spelling] = (*self._holders.get(spelling, ()), word)
        self._lengths = sorted({len(v) for v in variants}, reverse=True)
        # Every spelling opens with one of these pairs.
        self._openings = frozenset(v[:2] for v in variants)
        # A position where an opening may start has a first character of one
        # and a second character of one after it: a regex scan (in C) for that
        # finds the few places worth a look, instead of a Python loop over all.
        firsts = "".join(re.escape(ch) for ch in sorted({o[0] for o in self._openings}))
        seconds = "".join(re.escape(ch) for ch in sorted({o[1] for o in self._openings}))
        self._near_re = re.compile("(?=[" + firsts + "][" + seconds + "])")

    def _pair_is_word(self, pair: str) -> bool:
        return len(pair) == 2 and self._freq.get(pair, 0) >= _COMMON_PAIR

    def _inside_word(self, text: str, i: int, spelling: str) -> bool:
        """Whether the spelling at text[i:] is part of a lexicon word written there."""
        for word in self._holders[spelling]:
            at = word.find(spelling)
            while at >= 0:
                if text.startswith(word, i - at) and i - at >= 0:
                    return True
                at = word.find(spelling, at + 1)
        return False

    def fix(self, text: str) -> str:
        openings = self._openings
        variants = self._variants
        out: list[str] | None = None
        done = 0  # text before this is settled (a replacement ends here)
        for m in self._near_re.finditer(text):
            i = m.start()
            if i < done or text[i : i + 2] not in openings:
                continue
            for length in self._lengths:
                spelling = text[i : i + length]
                word = variants.get(spelling)
                if word is None:
                    continue
                end = i + length
                if spelling in self._holders and self._inside_word(text, i, spelling):
                    continue
                if (i and self._pair_is_word(text[i - 1 : i + 1])) or self._pair_is_word(text[end - 1 : end + 1]):
                    continue
                if out is None:
                    out = list(text)
                out[i:end] = word
                done = end
                break
        return text if out is None else "".join(out)
