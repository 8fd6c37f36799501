"""Read a Prometheus text exposition written in the strict form of client libraries.

Client libraries write one regular form of the text format, and a compiled regular
expression per line reads it several times faster than prometheus_client's parser.
``strict_families`` returns None for anything else, so the caller hands those lines
to the library, which stays the authority on the format.
"""

from __future__ import annotations

import re

from veerunbook.metrics_scrape import Family, Sample

__all__ = ["COMMENT_LINE", "strict_families"]

# The strict form that client libraries write, read with regular expressions for speed.
# prometheus_client 0.26 spends about 40 % of its parse scanning label text one
# character at a time (cProfile). bench/metrics_parse.py measured this module at about
# 3.5 times the library's throughput on bodies of 1,000 to 100,000 series: 215,000 to
# 240,000 series/s against 62,000 to 67,000 (Python 3.11, 2 shared cores). Any line
# in another form goes to the library, so this reader never decides an odd case. Such
# lines have a label name with a colon or a "__" prefix, tabs, spaces inside the
# braces, an exemplar or a quoted UTF-8 name, for example.
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_QUOTED = r'[^"\\]*(?:\\.[^"\\]*)*'
_LABEL_VALUE = rf'"{_QUOTED}"'
_LABEL = rf"(?!__){_LABEL_NAME}={_LABEL_VALUE}"
# A float as Python writes it, NaN or Inf. The library rejects "_", which float() takes.
_NUMBER = r"[0-9A-Za-z.+-]+"
_SAMPLE_LINE = re.compile(
    rf"({_NAME})(?:\{{((?:{_LABEL},)*(?:{_LABEL})?)\}})?"
    rf" +({_NUMBER})(?: +({_NUMBER}))?[ \t\r]*"
)
_LABEL_PAIR = re.compile(rf'({_LABEL_NAME})="({_QUOTED})"')
COMMENT_LINE = re.compile(
    rf"# (?:HELP ({_NAME})(?:[ \t\r].*)?"
    rf"|TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)[ \t\r]*)"
)
_ESCAPE_SEQUENCE = re.compile(r'\\[\\n"]')
_UNESCAPED = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}


def strict_families(
    lines: list[str], indexes: range | list[int]
) -> list[Family] | None:
    """Parse lines in the strict form into the families that the library would return.

    Returns None when a line is in another form or has a value that the library
    rejects.
    """
    grouping = _Grouping()
    # Equal sample names, label names and label values share one string, because most
    # repeat on many lines. On the 100,000-series body of bench/metrics_parse.py, that
    # cuts the parse's peak memory from 92 to 53 MB (tracemalloc, Python 3.11).
    strings: dict[str, str] = {}
    match_sample = _SAMPLE_LINE.fullmatch
    try:
        for index in indexes:
            line = lines[index]
            match = match_sample(line)
            if match is not None:
                sample = _sample(match, index + 1, strings)
                if sample.name in grouping.allowed:
                    grouping.samples.append(sample)
                else:
                    grouping.add_undeclared(sample)
            elif line and not line.isspace() and not _read_comment(line, grouping):
                return None
        return grouping.finish()
    except (ValueError, OverflowError):
        return None


class _Grouping:
    """Samples grouped into families as prometheus_client 0.26 groups them.

    A HELP or TYPE line naming another family starts one. A sample whose name the
    family's type does not allow ends the family and is a family of its own, of type
    "unknown". Sample names are kept as written, also for a counter declared without
    "_total", whose samples the library renames.
    """

    __slots__ = ("allowed", "declared", "families", "name", "samples")

    def __init__(self) -> None:
        self.families: list[Family] = []
        self.name = ""
        self.declared = "untyped"
        self.allowed: tuple[str, ...] = ()
        self.samples: list[Sample] = []

    def declare(self, name: str, family_type: str | None) -> None:
        """Apply a HELP line, with ``family_type`` None, or a TYPE line."""
        if name != self.name:
            self._end()
            self.name, self.declared, self.samples = name, "untyped", []
            self.allowed = (name,)
        if family_type is not None:
            self.declared = family_type
            self.allowed = _allowed_names(name, family_type)

    def add_undeclared(self, sample: Sample) -> None:
        self._end()
        self.name, self.declared, self.allowed, self.samples = "", "untyped", (), []
        self.families.append(Family(sample.name, "unknown", [sample]))

    def finish(self) -> list[Family]:
        self._end()
        return self.families

    def _end(self) -> None:
        name = self.name
        if not name:
            return
        if self.declared == "counter" and name.endswith("_total"):
            name = name.removesuffix("_total")
            if not name:
                raise ValueError("a counter named _total has an empty family name")
        family_type = "unknown" if self.declared == "untyped" else self.declared
        self.families.append(Family(name, family_type, self.samples))


def _read_comment(line: str, grouping: _Grouping) -> bool:
    """Apply a comment line to ``grouping``, or return False if it is not strict."""
    if line[0] != "#":
        return False
    comment = COMMENT_LINE.fullmatch(line)
    if comment is None:
        # The library ignores a comment unless its second word is HELP or TYPE. Where
        # HELP or TYPE appears elsewhere in the line, the library splits the words.
        return "HELP" not in line and "TYPE" not in line
    helped, typed, family_type = comment.groups()
    grouping.declare(helped or typed, family_type)
    return True


def _sample(match: re.Match[str], number: int, strings: dict[str, str]) -> Sample:
    """Build the sample of a matched line, raising where the library rejects it."""
    name, label_text, value_text, timestamp = match.groups()
    labels = _labels(label_text, strings) if label_text else {}
    value = float(value_text)
    if not value and value_text[0] == "-" and value_text[1:].isdigit():
        # The library reads "-0" as the integer 0, which has no sign.
        value = 0.0
    if timestamp is not None:
        _timestamp_seconds(timestamp)
    # Sample(...) runs NamedTuple.__new__ with its argument handling, which takes
    # twice as long as building the same tuple directly.
    fields = (strings.setdefault(name, name), labels, value, number)
    return tuple.__new__(Sample, fields)


def _labels(text: str, strings: dict[str, str]) -> dict[str, str]:
    """Read the label pairs that _SAMPLE_LINE matched, raising on a repeated name.

    Names and values equal to a key of ``strings`` are replaced by its value.
    """
    share = strings.setdefault
    pairs = _LABEL_PAIR.findall(text)
    if "\\" in text:
        pairs = [(name, _unescape(value)) for name, value in pairs]
    labels = {share(name, name): share(value, value) for name, value in pairs}
    if len(labels) != len(pairs):
        raise ValueError(f"repeated label name in {{{text}}}")
    return labels


def _unescape(value: str) -> str:
    # Any other backslash stays as written, as in the library and a Prometheus server.
    return _ESCAPE_SEQUENCE.sub(lambda match: _UNESCAPED[match.group()], value)


def _timestamp_seconds(text: str) -> float:
    """Convert a timestamp in milliseconds as the library does, raising where it does.

    An integer too large for a float raises OverflowError in the division.
    """
    milliseconds: float
    try:
        milliseconds = int(text)
    except ValueError:
        milliseconds = float(text)
    return milliseconds / 1000


def _allowed_names(name: str, family_type: str) -> tuple[str, ...]:
    if family_type == "summary":
        return (name + "_count", name + "_sum", name)
    if family_type == "histogram":
        return (name + "_count", name + "_sum", name + "_bucket")
    return (name,)
