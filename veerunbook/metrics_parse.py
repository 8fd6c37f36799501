"""Parse a Prometheus text exposition, keeping the valid samples of a broken one.

Client libraries write the text format in one strict form, and a regular expression
per line reads that form first. A body with a line in any other form is split into
metric families: a family of strict lines is read the same way, and any other family
goes to prometheus_client's parser, which is the authority on the text format. The
library raises on the first invalid line and yields nothing after it, so a family that
it rejects is parsed again one line at a time. Each rejected line becomes a warning
with its 1-based line number, and every other sample is kept.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
from collections.abc import Iterator
from typing import Any

from veerunbook.metrics_checks import (
    add_inf_buckets,
    escape_warnings,
    rejection_message,
    rejection_summary,
)
from veerunbook.metrics_scrape import Family, ParseWarning, Sample, Scrape
from veerunbook.metrics_strict import COMMENT_LINE, strict_families

logger = logging.getLogger("veerunbook.metrics")


def parse_exposition(text: str, *, scraped_at: float | None = None) -> Scrape:
    """Parse a Prometheus text exposition (format 0.0.4) without raising.

    ``scraped_at`` is the scrape time in seconds since the epoch, used for windows.
    """
    with _collection_paused():
        return _parse(text, scraped_at)


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    """Pause cyclic garbage collection while the parse allocates.

    The parse allocates a few objects per sample and creates no reference cycles, so a
    collection during it only re-scans live objects. On a 100,000-series body that cost
    10-20 % of the parse time (Python 3.11, 2 cores).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _parse(text: str, scraped_at: float | None) -> Scrape:
    lines = text.split("\n")
    warnings: list[ParseWarning] = []
    rejected: list[int] = []

    # The fast path: every line of the body in the strict form.
    families = strict_families(lines, range(len(lines)))
    if families is None:
        logger.debug("exposition has lines outside the strict form, parsing per family")
        families = _tolerant_families(text, lines, warnings, rejected)

    samples = [sample for family in families for sample in family.samples]
    types = {family.name: family.type for family in families}
    if "\\" in text:
        warnings.extend(escape_warnings(lines, samples))
    samples.extend(add_inf_buckets(families, warnings))
    if rejected:
        warnings.append(ParseWarning(None, rejection_summary(rejected)))
    warnings.sort(
        key=lambda warning: math.inf if warning.line is None else warning.line
    )

    if warnings:
        logger.warning(
            "exposition parsed with %d warnings, %d lines rejected",
            len(warnings),
            len(rejected),
        )
    return Scrape(samples, types, warnings, rejected, scraped_at)


def _tolerant_families(
    text: str, lines: list[str], warnings: list[ParseWarning], rejected: list[int]
) -> list[Family]:
    """Parse each family block, and each line of a block that the library rejects."""
    blocks, exact = _family_blocks(lines)
    if not exact:
        # The blocks may not start where the library starts a family, so they are
        # used only when the library rejects the whole body.
        parsed = _parse_chunk(text, lines, range(len(lines)))
        if isinstance(parsed, list):
            return parsed

    families: list[Family] = []
    for block in blocks:
        families.extend(_parse_block(lines, block, warnings, rejected))
    return families


def _family_blocks(lines: list[str]) -> tuple[list[range], bool]:
    """Split the lines where a HELP or TYPE line names a new metric family.

    This reads only the first three words of comment lines, because the library has no
    entry point that parses one family of a larger body. The flag is False when a
    HELP or TYPE line is not in the strict form, because the library may read another
    family name from it: it splits words at ASCII whitespace outside quotes only.
    """
    starts = [0]
    current = ""
    exact = True
    for index, line in enumerate(lines):
        if "HELP" not in line and "TYPE" not in line:
            continue
        words = line.split(None, 3)
        if len(words) < 3 or words[0] != "#" or words[1] not in ("HELP", "TYPE"):
            continue
        if COMMENT_LINE.fullmatch(line) is None:
            exact = False
        if words[2] != current:
            current = words[2]
            if index > starts[-1]:
                starts.append(index)
    ends = [*starts[1:], len(lines)]
    blocks = [range(start, end) for start, end in zip(starts, ends, strict=True)]
    return blocks, exact


def _parse_block(
    lines: list[str],
    block: range,
    warnings: list[ParseWarning],
    rejected: list[int],
) -> list[Family]:
    """Parse one family block, line by line when the library rejects it whole."""
    parsed = _parse_lines(lines, block)
    if isinstance(parsed, list):
        return parsed

    # Each line is parsed after the block's valid comment lines, so that a sample
    # keeps the type that its family's TYPE line declares.
    header: list[int] = []
    families: list[Family] = []
    for index in block:
        line = lines[index]
        if not line.strip():
            continue
        indexes = [*header, index]
        parsed = _parse_lines(lines, indexes)
        if not isinstance(parsed, list):
            rejected.append(index + 1)
            warnings.append(ParseWarning(index + 1, rejection_message(line, parsed)))
        elif _is_sample_line(line):
            families.extend(family for family in parsed if family.samples)
        else:
            header.append(index)

    # The comment lines alone give the family's type even when every sample failed.
    parsed = _parse_lines(lines, header)
    if isinstance(parsed, list):
        families.extend(parsed)
    return families


def _parse_lines(lines: list[str], indexes: range | list[int]) -> list[Family] | str:
    """Parse ``lines[i] for i in indexes`` strictly, or with the library if that fails.

    Returns the families, or the library's reason as a string when it rejects them.
    """
    strict = strict_families(lines, indexes)
    if strict is not None:
        return strict
    return _parse_chunk("\n".join(lines[i] for i in indexes), lines, indexes)


def _parse_chunk(
    text: str, lines: list[str], indexes: range | list[int]
) -> list[Family] | str:
    """Parse ``text``, made of ``lines[i] for i in indexes``, with prometheus_client.

    Returns the families, or the parser's reason as a string when it rejects the text.
    """
    # Imported here: most bodies never leave the strict reader.
    from prometheus_client.parser import text_string_to_metric_families

    try:
        metrics = list(text_string_to_metric_families(text))
    except Exception as error:
        # The library signals invalid input with ValueError, but a malformed line can
        # also surface as another exception from deep inside it. Any exception here
        # means that the text was rejected, and the caller reports it.
        return str(error) or type(error).__name__

    # The library turns every non-blank line not starting with "#" into exactly one
    # sample and yields them in order, so the n-th sample comes from the n-th such line.
    numbers = [
        index + 1
        for index in indexes
        if (stripped := lines[index].strip()) and stripped[0] != "#"
    ]
    families: list[Family] = []
    position = 0
    for metric in metrics:
        end = position + len(metric.samples)
        samples = _convert(metric, numbers[position:end], lines)
        families.append(Family(metric.name, metric.type, samples))
        position = end
    if position != len(numbers):
        return f"{position} samples for {len(numbers)} sample lines"
    return families


def _is_sample_line(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and stripped[0] != "#"


def _convert(metric: Any, numbers: list[int], lines: list[str]) -> list[Sample]:
    """Convert a family's samples, adding line numbers and making values floats.

    This runs for every sample of every scrape, so it is one comprehension without a
    helper call per sample.
    """
    pairs = zip(metric.samples, numbers, strict=False)
    try:
        samples = [Sample(s.name, s.labels, float(s.value), n) for s, n in pairs]
    except OverflowError:
        pairs = zip(metric.samples, numbers, strict=False)
        samples = [Sample(s.name, s.labels, _as_float(s.value), n) for s, n in pairs]

    # The library renames every sample of a counter declared without "_total" to end
    # in "_total". Keep the names as written, so that lookups match the exposition.
    renamed = (
        metric.type == "counter"
        and samples
        and not _names_sample(lines[numbers[0] - 1], samples[0].name)
    )
    if renamed:
        samples = [s._replace(name=s.name.removesuffix("_total")) for s in samples]
    return samples


def _names_sample(line: str, name: str) -> bool:
    return line.lstrip().startswith(name) or f'"{name}"' in line


def _as_float(value: float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
