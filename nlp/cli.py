"""``gridbot parse``: the parser from the command line.

``gridbot parse TEXT`` prints one record as pretty JSON; ``gridbot parse
--jsonl`` reads JSON objects with a ``"text"`` key from stdin, one a line, and
writes one object a line in the same order; with neither, the whole of stdin
is one message.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from nlp.parser import parse


def _record(text: str) -> dict[str, Any]:
    return {"text": text, **parse(text).to_dict()}


def _dump(obj: Any, **kwargs: Any) -> str:
    try:
        return json.dumps(obj, ensure_ascii=False, **kwargs)
    except (UnicodeEncodeError, ValueError):
        return json.dumps(obj, ensure_ascii=True, **kwargs)


def _write(stdout: IO[str], line: str) -> None:
    try:
        stdout.write(line)
    except UnicodeEncodeError:
        # Lone surrogates cannot be encoded by a UTF-8 stream: escape them.
        stdout.write(line.encode("utf-8", "backslashreplace").decode("utf-8"))


def run_parse(text: str | None, jsonl: bool, stdin: IO[str], stdout: IO[str]) -> int:
    """Run ``gridbot parse``; returns the exit status (1 if any input line was bad)."""
    if not jsonl:
        if text is None:
            # `echo 36.5 | gridbot parse`: the shell's final newline is not part of the message.
            text = stdin.read().rstrip("\r\n")
        _write(stdout, _dump(_record(text), indent=2) + "\n")
        return 0
    status = 0
    for lineno, line in enumerate(stdin, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise ValueError('expected a JSON object with a string "text"')
        except ValueError as exc:
            # Keep output lines aligned with input lines: one error line each.
            _write(stdout, _dump({"error": f"line {lineno}: {exc}"}) + "\n")
            status = 1
            continue
        _write(stdout, _dump(_record(obj["text"])) + "\n")
    stdout.flush()
    return status


def cli_parse(args) -> int:
    """`gridbot parse [TEXT]` / `gridbot parse --jsonl` (routed from bot/cli.py)."""
    # Chinese text on a terminal whose locale is not UTF-8 must not crash the command.
    for stream in (sys.stdin, sys.stdout):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8", errors="replace")
    return run_parse(args.text, args.jsonl, sys.stdin, sys.stdout)
