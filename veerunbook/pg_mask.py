"""Mask passwords in SQL text read from pg_stat_activity and pg_stat_statements.

PostgreSQL keeps the literals of utility statements such as ``ALTER ROLE`` in both
views, passwords included. ``mask_sql`` replaces with ``'***'``:

- the string literal after the word PASSWORD or SSLPASSWORD, in any of PostgreSQL's
  forms (``'...'``, ``E'...'``, ``U&'...'``, ``$$...$$``, ``$tag$...$tag$``), with
  comments, whitespace, ``=`` or ``TO`` in between. That covers ``CREATE|ALTER
  ROLE|USER ... PASSWORD``, user mapping and foreign server ``OPTIONS (password
  '...')``, and ``SET ... password = '...'``;
- the value of ``password=`` and ``sslpassword=`` inside any literal (libpq
  connection strings passed to dblink, CREATE SUBSCRIPTION or primary_conninfo), the
  password of a ``scheme://user:password@host`` URL inside any literal, and the
  literal that follows one ending in ``password=``.

SQL inside a literal (a ``DO $$ ... $$`` block, a function body, a string passed to
EXECUTE) is masked by the same rules. A literal cut off by
``track_activity_query_size`` has no closing quote and runs to the end of the text,
so a cut-off password is masked whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

MASKED_LITERAL = "'***'"
# Words whose following literal is a password: CREATE ROLE, user mappings, servers.
_PASSWORD_WORDS = frozenset({"password", "sslpassword"})
# Literals nested deeper than this inside other literals are masked whole, so a
# crafted text cannot exhaust the recursion.
_MAX_DEPTH = 8

_IDENTIFIER = re.compile(r"(?:[A-Za-z_]|[^\x00-\x7f])(?:[A-Za-z0-9_$]|[^\x00-\x7f])*")
_DOLLAR_DELIMITER = re.compile(
    r"\$(?:(?:[A-Za-z_]|[^\x00-\x7f])(?:[A-Za-z0-9_]|[^\x00-\x7f])*)?\$"
)
_PARAMETER = re.compile(r"\$[0-9]+")
_NUMBER = re.compile(r"[0-9][0-9A-Za-z_.]*")
# A libpq value is a quoted run, where a backslash escapes, or a run without spaces.
_CONNINFO_PASSWORD = re.compile(
    r"(?P<head>\b(?:ssl)?password\s*=\s*)"
    r"(?P<value>'(?:\\.|[^'\\])*'?|(?:\\.|[^\s'\\])+)",
    re.IGNORECASE | re.DOTALL,
)
_CONNINFO_PASSWORD_LAST = re.compile(
    r"\b(?:ssl)?password\s*=\s*['\\]*\s*$", re.IGNORECASE
)
_URL_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)(?P<value>[^\s@/]+)(?P<at>@)"
)


@dataclass(frozen=True)
class _Token:
    """A lexical token; for a literal, ``body`` is the span between its delimiters."""

    kind: str  # "literal", "comment", "word" or "other"
    start: int
    end: int
    body_start: int = 0
    body_end: int = 0
    escapes: bool = False  # an E'...' literal, where a backslash escapes a quote


# A lexer of its own because neither well-kept Python library fits. sqlparse 0.6.1
# splits the E and U& prefixes from their literals, reads a backslash as an escape in
# standard strings, and has no token for a literal without its closing quote. pglast
# 8.8 (PostgreSQL's own scanner) raises on such a cut-off literal and on invalid
# escapes, at positions that can fall inside a literal. This lexer never raises. It
# reads only what decides where a literal starts and ends: quotes, E'' escapes, U&''
# and dollar quotes, comments and quoted identifiers.
def _tokens(text: str) -> Iterator[_Token]:
    """Split ``text`` into tokens; whitespace between them is left out."""
    position = 0
    while position < len(text):
        char = text[position]
        if char.isspace():
            position += 1
            continue
        token = _token_at(text, position)
        yield token
        position = token.end


def _token_at(text: str, start: int) -> _Token:
    pair = text[start : start + 2]
    prefix = text[start : start + 3]
    if pair == "--":
        newline = text.find("\n", start)
        return _Token("comment", start, len(text) if newline < 0 else newline)
    if pair == "/*":
        return _Token("comment", start, _comment_end(text, start))
    if text[start] == "'":
        return _quoted(text, start, 0, escapes=False)
    if pair[:1] in ("E", "e") and pair[1:] == "'":
        return _quoted(text, start, 1, escapes=True)
    if pair[:1] in "BbXxNn" and pair[1:] == "'":
        return _quoted(text, start, 1, escapes=False)
    if prefix[:1] in ("U", "u") and prefix[1:] == "&'":
        return _quoted(text, start, 2, escapes=False)
    if prefix[:1] in ("U", "u") and prefix[1:] == '&"':
        return _identifier_end(text, start + 2, start)
    if text[start] == '"':
        return _identifier_end(text, start, start)
    if text[start] == "$":
        return _dollar(text, start)
    for kind, pattern in (("word", _IDENTIFIER), ("other", _NUMBER)):
        match = pattern.match(text, start)
        if match:
            return _Token(kind, start, match.end())
    return _Token("other", start, start + 1)


def _comment_end(text: str, start: int) -> int:
    """Return the end of the ``/* */`` comment at ``start``; these comments nest."""
    depth = 0
    position = start
    while position < len(text):
        pair = text[position : position + 2]
        if pair == "/*":
            depth += 1
            position += 2
        elif pair == "*/":
            depth -= 1
            position += 2
            if depth == 0:
                return position
        else:
            position += 1
    return len(text)


def _quoted(text: str, start: int, prefix: int, *, escapes: bool) -> _Token:
    """Read a single-quoted literal; a doubled quote stands for one quote."""
    body_start = start + prefix + 1
    position = body_start
    while position < len(text):
        char = text[position]
        escaped = escapes and char == "\\"
        doubled = char == "'" and text[position + 1 : position + 2] == "'"
        if escaped or doubled:
            position += 2
        elif char == "'":
            return _Token("literal", start, position + 1, body_start, position, escapes)
        else:
            position += 1
    return _Token("literal", start, len(text), body_start, len(text), escapes)


def _identifier_end(text: str, quote: int, start: int) -> _Token:
    """Read a double-quoted identifier, whose doubled quotes stand for one quote."""
    position = quote + 1
    while position < len(text):
        if text[position] == '"' and text[position + 1 : position + 2] == '"':
            position += 2
        elif text[position] == '"':
            return _Token("word", start, position + 1)
        else:
            position += 1
    return _Token("word", start, len(text))


def _dollar(text: str, start: int) -> _Token:
    parameter = _PARAMETER.match(text, start)
    if parameter:
        return _Token("other", start, parameter.end())
    delimiter = _DOLLAR_DELIMITER.match(text, start)
    if delimiter is None:
        return _Token("other", start, start + 1)
    tag = delimiter.group()
    body_start = delimiter.end()
    close = text.find(tag, body_start)
    if close < 0:
        return _Token("literal", start, len(text), body_start, len(text))
    return _Token("literal", start, close + len(tag), body_start, close)


def mask_sql(text: str | None) -> str | None:
    """Mask the passwords in an SQL text (see the module docstring for the forms).

    None and "" are returned as they are.
    """
    return _mask(text, 0) if text else text


def _mask(text: str, depth: int) -> str:
    pieces: list[str] = []
    copied = 0
    after_password = False
    mask_next = False
    for token in _tokens(text):
        if token.kind == "comment":
            continue
        if token.kind == "literal":
            pieces.append(text[copied : token.start])
            raw_body = text[token.body_start : token.body_end]
            if after_password or mask_next or depth >= _MAX_DEPTH:
                # after_password stays set for the next literal, because PostgreSQL
                # joins literals separated by a newline into one: 'pass'\n'word'.
                pieces.append(MASKED_LITERAL)
            else:
                pieces.append(_mask_literal(text, token, depth))
            mask_next = _CONNINFO_PASSWORD_LAST.search(raw_body) is not None
            copied = token.end
            continue
        word = text[token.start : token.end].strip('"').lower()
        if token.kind == "word" and word in _PASSWORD_WORDS:
            after_password = True
        elif not (after_password and word in ("=", "to")):
            after_password = False
    pieces.append(text[copied:])
    return "".join(pieces)


def _mask_literal(text: str, token: _Token, depth: int) -> str:
    """Mask inside one literal: SQL, connection strings and URLs in its body."""
    dollar = text[token.start] == "$"
    body = text[token.body_start : token.body_end]
    if not dollar:
        body = body.replace("''", "'")
        if token.escapes:
            body = body.replace("\\'", "'")
    masked = _mask(body, depth + 1)
    masked = _CONNINFO_PASSWORD.sub(r"\g<head>***", masked)
    masked = _URL_PASSWORD.sub(r"\g<head>***\g<at>", masked)
    if masked == body:
        return text[token.start : token.end]
    if not dollar:
        masked = masked.replace("'", "''")
    opening = text[token.start : token.body_start]
    closing = text[token.body_end : token.end]
    return opening + masked + closing
