"""Tests of veerunbook.metrics_parse against prometheus_client's parser.

parse_exposition reads lines in the strict form that client libraries write with its
own regular expressions, and hands any other line to prometheus_client. These tests
check that both give the same samples and family types, on the exporter fixtures and
on generated bodies, and that the odd cases keep the library's reading.
"""

from __future__ import annotations

import logging
import math
import random
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from veerunbook.metrics_parse import parse_exposition
from veerunbook.metrics_scrape import Scrape

FIXTURES = Path(__file__).parent / "fixtures"
NO_INF = FIXTURES / "veefore-histogram-no-inf-bucket" / "metrics.txt"
UNESCAPED = FIXTURES / "veefore-unescaped-label-values" / "metrics.txt"
RESET = FIXTURES / "veefore-counter-reset-between-scrapes"
# The lines of the unescaped fixture that prometheus_client rejects, as its README
# lists them: a value ending in a backslash (15, 31-40) and an unescaped quote (17).
UNESCAPED_REJECTED = [15, 17, *range(31, 41)]

SampleKey = tuple[str, tuple[tuple[str, str], ...], str]


def value_key(value: float) -> str:
    """Return a comparable form of a value, because NaN equals nothing."""
    return "NaN" if math.isnan(value) else repr(float(value))


def library_samples(text: str) -> list[SampleKey]:
    """Parse with prometheus_client, with sample names as the body writes them.

    The library appends "_total" to the samples of a counter declared without it.
    """
    declared = re.findall(r"^#\s+TYPE\s+(\S+)\s+counter\s*$", text, re.MULTILINE)
    renamed = {name for name in declared if not name.endswith("_total")}
    samples = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if family.type == "counter" and family.name in renamed:
                name = name.removesuffix("_total")
            labels = tuple(sorted(sample.labels.items()))
            samples.append((name, labels, value_key(sample.value)))
    return samples


def library_types(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def parsed_samples(scrape: Scrape) -> list[SampleKey]:
    """Return the samples read from lines, without the +Inf buckets added."""
    return [
        (sample.name, tuple(sorted(sample.labels.items())), value_key(sample.value))
        for sample in scrape.samples
        if sample.line is not None
    ]


def without_lines(text: str, numbers: list[int]) -> str:
    """Return ``text`` with its 1-based lines ``numbers`` blanked."""
    lines = text.split("\n")
    for number in numbers:
        lines[number - 1] = ""
    return "\n".join(lines)


def label_value(rng: random.Random) -> str:
    """Return a label value, escaped for the text format, sometimes with escapes."""
    value = f"/api/v{rng.randint(1, 3)}/items/{rng.randint(0, 99999)}"
    if rng.random() < 0.1:
        value += rng.choice(['\\"quoted\\"', "C:\\\\temp", "line\\nbreak", "}{,="])
    return value


def generated_body(seed: int, families: int = 40) -> str:
    """Build an exposition of every family type, deterministically from ``seed``.

    Counters are written with and without ``_total``, some gauges carry timestamps,
    and an undeclared sample after some families makes the library end the family.
    """
    rng = random.Random(seed)
    lines: list[str] = []
    for number in range(families):
        kind = rng.choice(["counter", "gauge", "histogram", "summary", "untyped"])
        name = f"app_{kind}_{number}"
        if kind == "counter" and rng.random() < 0.7:
            name += "_total"
        lines += [
            f"# HELP {name} A {kind} of the generated body.",
            f"# TYPE {name} {kind}",
        ]
        for series in range(rng.randint(1, 6)):
            labels = f'route="{label_value(rng)}",shard="{series}"'
            lines += series_lines(name, kind, labels, rng)
        if rng.random() < 0.1:
            lines.append(f"undeclared_{number} {rng.randint(0, 9)}")
        lines.append("")
    return "\n".join(lines) + "\n"


def series_lines(name: str, kind: str, labels: str, rng: random.Random) -> list[str]:
    if kind == "histogram":
        total = rng.randint(0, 5000)
        bounds = ["0.01", "0.1", "1", "10", "+Inf"]
        lines = [
            f'{name}_bucket{{{labels},le="{bound}"}} {total * (i + 1) // len(bounds)}'
            for i, bound in enumerate(bounds)
        ]
        return [
            *lines,
            f"{name}_sum{{{labels}}} {total * 0.25}",
            f"{name}_count{{{labels}}} {total}",
        ]
    if kind == "summary":
        return [
            f'{name}{{{labels},quantile="0.5"}} {rng.random():.6f}',
            f'{name}{{{labels},quantile="0.99"}} {rng.random() * 10:.6e}',
            f"{name}_sum{{{labels}}} {rng.randint(0, 900)}.5",
            f"{name}_count{{{labels}}} {rng.randint(0, 900)}",
        ]
    value = rng.choice(["0", "-0", "1", "17.25", "NaN", "+Inf", "-Inf", "3e-05"])
    timestamp = f" {1_700_000_000_000 + rng.randint(0, 999)}" if kind == "gauge" else ""
    return [f"{name}{{{labels}}} {value}{timestamp}"]


# Agreement with prometheus_client.


@pytest.mark.parametrize(
    "path",
    [NO_INF, RESET / "scrape-0.txt", RESET / "scrape-1.txt"],
    ids=lambda p: p.stem,
)
def test_valid_fixture_matches_library(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    scrape = parse_exposition(text)
    assert parsed_samples(scrape) == library_samples(text)
    assert scrape.types == library_types(text)


def test_unescaped_fixture_matches_library() -> None:
    text = UNESCAPED.read_text(encoding="utf-8")
    scrape = parse_exposition(text)
    assert scrape.rejected_lines == UNESCAPED_REJECTED
    accepted = without_lines(text, UNESCAPED_REJECTED)
    assert parsed_samples(scrape) == library_samples(accepted)
    assert scrape.types == library_types(accepted)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_generated_body_matches_library(seed: int) -> None:
    text = generated_body(seed)
    scrape = parse_exposition(text)
    assert scrape.valid
    assert parsed_samples(scrape) == library_samples(text)
    assert scrape.types == library_types(text)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_body_read_strictly(
    seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="veerunbook.metrics")
    parse_exposition(generated_body(seed))
    assert "outside the strict form" not in caplog.text


def test_line_numbers_follow_body() -> None:
    text = generated_body(6)
    lines = text.split("\n")
    for sample in parse_exposition(text).samples:
        assert sample.line is not None
        assert lines[sample.line - 1].startswith(sample.name)


def test_defect_keeps_rest_of_body() -> None:
    text = generated_body(7, families=120)
    lines = text.split("\n")
    broken = len(lines) // 2
    while "{" not in lines[broken - 1] or lines[broken - 1].startswith("#"):
        broken += 1
    lines[broken - 1] = lines[broken - 1].replace("=", '="x"', 1)
    text = "\n".join(lines)

    scrape = parse_exposition(text)
    assert scrape.rejected_lines == [broken]
    assert parsed_samples(scrape) == library_samples(without_lines(text, [broken]))


@pytest.mark.parametrize(
    "text",
    [
        'a{b="1"}\t1\n',
        "a\t1\t1700000000000\n",
        'a{ b = "1" , c="2" } 1\n',
        'a{b="1",} 1\n',
        'a{"b.c"="1"} 1\n',
        '{__name__="a", b="1"} 1\n',
        'a{b:c="1"} 1\n',
        'a 1 # {trace_id="7f"} 0.5\n',
        'a{b="1"} 1 # {trace_id="7f"} 0.5 1700000000\n',
        "a 1  2\n",
        "   a 1\n",
        "a 1\x85\n",
        "# HELP a Escaped \\\\ and \\n in help.\n# TYPE a gauge\na 1\n",
        "#  TYPE a  counter\na 2\n",
        "# TYPE a unknown\na 1\n# TYPE b info\nb_info 1\n",
        "# TYPE a gauge\na 1\nb 2\na 3\n# TYPE a counter\na 4\n",
        "# TYPE s summary\ns_sum 1\ns_count 2\ns_created 3\n",
        '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh 2\n',
        "# TYPE jobs counter\njobs 3\njobs_total 4\n",
    ],
)
def test_odd_form_matches_library(text: str) -> None:
    scrape = parse_exposition(text)
    assert scrape.valid
    assert parsed_samples(scrape) == library_samples(text)
    assert scrape.types == library_types(text)


# Escapes, special values, timestamps and comments.


def test_label_escapes_unescaped() -> None:
    text = 'a{path="C:\\\\temp",quote="say \\"hi\\"",text="one\\ntwo"} 1\n'
    labels = parse_exposition(text).samples[0].labels
    assert labels["path"] == "C:\\temp"
    assert labels["quote"] == 'say "hi"'
    assert labels["text"] == "one\ntwo"


def test_label_escapes_match_library() -> None:
    text = 'a{v="\\\\\\"\\n\\\\n\\q"} 1\n'
    scrape = parse_exposition(text)
    assert parsed_samples(scrape) == library_samples(text)


def test_label_value_ending_in_escaped_backslash() -> None:
    scrape = parse_exposition('a{path="C:\\\\",b="2"} 1\n')
    assert scrape.samples[0].labels == {"path": "C:\\", "b": "2"}


def test_label_value_with_braces_and_commas() -> None:
    scrape = parse_exposition('a{q="}{,=",b="2"} 1\n')
    assert scrape.samples[0].labels == {"q": "}{,=", "b": "2"}


def test_special_values_match_library() -> None:
    text = "a NaN\nb +Inf\nc -Inf\nd 1e309\ne -1e309\nf 9007199254740993\ng -0\n"
    scrape = parse_exposition(text)
    assert parsed_samples(scrape) == library_samples(text)


def test_integer_minus_zero_unsigned() -> None:
    values = [sample.value for sample in parse_exposition("a -0\nb -0.0\n").samples]
    assert math.copysign(1.0, values[0]) == 1.0
    assert math.copysign(1.0, values[1]) == -1.0


@pytest.mark.parametrize("value", ["1_000", "0x10", "abc", "1.2.3"])
def test_invalid_value_rejected(value: str) -> None:
    scrape = parse_exposition(f"# TYPE a gauge\na {value}\nb 2\n")
    assert scrape.rejected_lines == [2]
    assert [sample.name for sample in scrape.samples] == ["b"]


def test_timestamp_accepted_and_dropped() -> None:
    scrape = parse_exposition("a 1.5 1700000000000\nb 2 -1500\n")
    assert scrape.valid
    assert [sample.value for sample in scrape.samples] == [1.5, 2.0]


@pytest.mark.parametrize("timestamp", ["later", "1_700", "1" * 400])
def test_invalid_timestamp_rejected(timestamp: str) -> None:
    scrape = parse_exposition(f"a 1 {timestamp}\nb 2\n")
    assert scrape.rejected_lines == [1]


def test_repeated_label_rejected() -> None:
    scrape = parse_exposition('a{b="1",b="2"} 1\nc 1\n')
    assert scrape.rejected_lines == [1]


def test_reserved_label_rejected() -> None:
    scrape = parse_exposition('a{__b="1"} 1\nc 1\n')
    assert scrape.rejected_lines == [1]


def test_other_comments_ignored() -> None:
    text = "# a note\n#\n# HELPFUL words\n# TYPE a gauge\na 1\n"
    scrape = parse_exposition(text)
    assert scrape.valid
    assert scrape.types == {"a": "gauge"}
    assert [sample.line for sample in scrape.samples] == [5]


def test_help_only_family_unknown() -> None:
    scrape = parse_exposition("# HELP a Help without a type.\na 1\n")
    assert scrape.types == {"a": "unknown"}


def test_counter_named_total_declaration_rejected() -> None:
    scrape = parse_exposition("# TYPE _total counter\n_total 1\nb 2\n")
    assert scrape.rejected_lines == [1]
    assert [sample.name for sample in scrape.samples] == ["_total", "b"]


def test_undeclared_sample_ends_family() -> None:
    scrape = parse_exposition("# TYPE a counter\na_total 1\nb 2\na_total 3\n")
    assert scrape.types == {"a": "counter", "b": "unknown", "a_total": "unknown"}


def test_results_equal_with_defect_elsewhere() -> None:
    valid = generated_body(8)
    defect = '# TYPE broken gauge\nbroken{a="x"y"} 1\n'
    before = parse_exposition(valid)
    after = parse_exposition(valid + defect)
    assert parsed_samples(after) == parsed_samples(before)
    assert [s.line for s in after.samples] == [s.line for s in before.samples]
    assert after.rejected_lines == [len(valid.split("\n")) + 1]
