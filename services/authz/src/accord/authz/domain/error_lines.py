"""Where in a policy its error is: the line a `path:line: reason` names.

Cedar (through cedarpy) reports what is wrong but not where, so the line is found here:

- a syntax error: the policy is parsed line by line (its first line, its first two...) until
  a prefix fails with something other than "unexpected end of input"; that line holds the
  offending token. Errors Cedar finds only once the policy is complete (an unknown method,
  a bad escape) name the offending text in backquotes: its first line in the policy. A
  policy that only ever ends too soon (a missing `;`) is reported at its last line.
- a validation error names an attribute, an entity type or an action in backquotes: the
  first line of the policy that uses it (an attribute as `.name` first). A type error names
  none of these: the policy's first line.

The lines are the file's, counted from the first line of the policy's text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import cedarpy

_EOF = "unexpected end of input"
_UNEXPECTED_TOKEN = re.compile(r"^unexpected token `(.+)`")
_QUOTED = re.compile(r"`([^`]+)`")
_INVALID_NAME = re.compile(r"^invalid (?:variable|name): (\S+)")
_POSITIONAL = re.compile(r"^policy\d+$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def syntax_error_line(text: str, first_line: int) -> int:
    """The line of `text` (a policy that does not parse, starting at `first_line`) where
    its syntax error is."""
    lines = text.split("\n")
    for count in range(1, len(lines) + 1):
        try:
            cedarpy.policies_to_json_str("\n".join(lines[:count]))
        except ValueError as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            if message.startswith(_EOF):
                continue
            return first_line + _locate(lines[:count], message, count - 1)
    return first_line + _last_significant(lines)


def validation_error_line(text: str, first_line: int, message: str) -> int:
    """The line of `text` (a policy starting at `first_line`) that a validation error's
    message points at; the policy's first significant line when it names nothing there."""
    lines = text.split("\n")
    for name in _names(message):
        found = _first_use(lines, name)
        if found is not None:
            return first_line + found
    return first_line + _first_significant(lines)


def annotation_line(text: str, first_line: int, annotation: str) -> int:
    """The line of `text` where `@annotation(` is (the policy's first line if nowhere)."""
    pattern = re.compile(rf"@{re.escape(annotation)}\s*\(")
    for index, code in _code_lines(text.split("\n")):
        if pattern.search(code):
            return first_line + index
    return first_line + _first_significant(text.split("\n"))


def _locate(lines: list[str], message: str, fallback: int) -> int:
    """Index of the line the first error of a parse names: an unexpected token at its last
    appearance in what was read, a backquoted name at its first; else `fallback`."""
    token = _UNEXPECTED_TOKEN.match(message)
    if token:
        for index, code in reversed(list(_code_lines(lines))):
            if token.group(1) in code:
                return index
        return fallback
    for name in _names(message):
        found = _first_use(lines, name)
        if found is not None:
            return found
    return fallback


def _names(message: str) -> list[str]:
    """What a message names: its backquoted parts (not Cedar's positional policy ids)."""
    names = [n for n in _QUOTED.findall(message) if not _POSITIONAL.match(n)]
    invalid = _INVALID_NAME.match(message)
    return [*names, invalid.group(1)] if invalid else names


def _first_use(lines: list[str], name: str) -> int | None:
    """Index of the first line using `name`: as an attribute (`.name`) first, then as a word
    (an identifier) or as text."""
    if _IDENTIFIER.match(name):
        patterns = [re.compile(rf"\.\s*{name}\b"), re.compile(rf"\b{name}\b")]
    else:
        patterns = [re.compile(re.escape(name))]
    code = list(_code_lines(lines))
    for pattern in patterns:
        for index, text in code:
            if pattern.search(text):
                return index
    return None


def _code_lines(lines: list[str]) -> Iterator[tuple[int, str]]:
    """Each line with its `//` comment cut off (a `//` inside a string is kept)."""
    for index, line in enumerate(lines):
        yield index, _without_comment(line)


def _without_comment(line: str) -> str:
    quoted = False
    i = 0
    while i < len(line):
        ch = line[i]
        if quoted and ch == "\\":
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and line.startswith("//", i):
            return line[:i]
        i += 1
    return line


def _first_significant(lines: list[str]) -> int:
    for index, code in _code_lines(lines):
        if code.strip():
            return index
    return 0


def _last_significant(lines: list[str]) -> int:
    for index, code in reversed(list(_code_lines(lines))):
        if code.strip():
            return index
    return 0
