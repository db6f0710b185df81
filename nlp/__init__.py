"""Parsing of residents' free-text check-ins: ``from nlp import parse``.

Pure and synchronous.  The jieba dictionary is loaded once, at import.
"""

from nlp.parser import DEFAULT_FEVER_AT, ParseResult, Person, parse
from nlp.segment import warm_up

__all__ = ["DEFAULT_FEVER_AT", "ParseResult", "Person", "parse", "warm_up"]
