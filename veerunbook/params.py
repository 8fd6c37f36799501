"""Notebook parameters: declaration, type-directed resolution and validation.

A procedure declares its parameters in the one code cell tagged ``parameters``, one
per line as ``name: type = default  # help with unit``. Supported types are
``str``, ``int``, ``float``, ``bool``, ``list``, ``dict``, ``list[T]`` and
``dict[str, T]`` with a scalar ``T``, and ``T | None``. A line without an
annotation takes the type of its default.

Values given on the command line are converted by the declared type, unlike papermill
2.7, which guesses the type from the string (``1.10`` became the float 1.1 and ``false``
stayed a truthy string):

- ``str``: kept verbatim, so ``1.10`` and ``0042`` stay strings.
- ``int``: an optional sign and decimal digits only. ``1.5``, ``1e3`` and ``1_000``
  are rejected.
- ``float``: anything ``float()`` accepts except NaN and infinities.
- ``bool``: exactly ``True`` or ``False``.
- ``list`` and ``dict``: a YAML or JSON flow value such as ``[api, worker]``.
- ``T | None``: the word ``None`` gives None.

Values from ``-f FILE.yaml`` must already have the declared type, because YAML 1.1
reads ``no`` as false and ``0042`` as the octal number 34. An int is accepted for a
float. ``-p`` overrides ``-f`` for the same name, and a later file overrides an
earlier one.

A number's help text may end with its allowed range, ``[low..high]``, and either end
may be left open. A text parameter's help text may end with a value format,
``{name}``, from ``veerunbook.paramformats``, such as ``{version}``. Values outside
the range or not in the format are rejected like a wrong type, except that the empty
string always passes a format.

Names that look like credentials and URLs with a password are rejected before any
other check, without echoing the value, because secrets belong in the environment
variables that ``veerunbook.toml`` names.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from veerunbook.errors import ParameterError, UsageError
from veerunbook.paramformats import FORMATS, check_format
from veerunbook.paramtypes import (
    CLI,
    ParamType,
    check_value,
    convert_text,
    read_parameter_cell,
)

__all__ = [
    "CONFIRM_PARAM",
    "STANDARD_PARAMETERS",
    "ParamSpec",
    "ParamType",
    "ResolvedParameters",
    "check_confirmation",
    "read_parameters",
    "resolve_parameters",
    "validate_values",
]

STANDARD_PARAMETERS = ("incident", "target", "archive")
"""Parameters the runner injects into every procedure from its own options."""

CONFIRM_PARAM = "confirm"
"""The parameter of a procedure that changes its target: the incident id, to carry
out its actions, or empty for a dry-run."""

SECRET_NAME_PARTS = frozenset(
    {
        "token", "password", "passwd", "pwd", "secret", "key", "apikey", "dsn",
        "credential", "credentials", "auth",
    }
)  # fmt: skip
"""Words that mark a name as a credential when one ``_``-separated part matches."""

_URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:[^\s/@]+@")


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter: name, type, default value and help text."""

    name: str
    type: ParamType
    default: Any
    help: str

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        """The ``[low..high]`` range a number's help text ends with, if any."""
        match = _RANGE.search(self.help)
        if match is None or self.type.base not in (int, float):
            return None, None
        low, high = match.group("low"), match.group("high")
        return (float(low) if low else None), (float(high) if high else None)

    def check_range(self, value: Any, origin: str) -> None:
        """Raise ParameterError when a number is outside the declared range."""
        low, high = self.bounds
        if not isinstance(value, int | float) or isinstance(value, bool):
            return
        if (low is not None and value < low) or (high is not None and value > high):
            shown = f"[{_number(low)}..{_number(high)}]"
            raise ParameterError(
                f"parameter {self.name!r} from {origin} has value {value!r} outside "
                f"its range {shown}; give a value within it."
            )

    @property
    def format(self) -> str | None:
        """The name of the ``{format}`` the help text ends with, if any."""
        match = _FORMAT.search(self.help)
        return None if match is None else match.group("format")

    def check_format(self, value: Any, origin: str) -> None:
        """Raise ParameterError when a text value is not in the declared format."""
        name = self.format
        if name is None or not isinstance(value, str):
            return
        problem = check_format(name, value)
        if problem is not None:
            raise ParameterError(f"parameter {self.name!r} from {origin}: {problem}.")


# A help text may end with a range for a number, e.g. "# seconds [1..3600]", or with a
# format for text, e.g. "# version to roll back to {version}".
_FORMAT = re.compile(r"\{(?P<format>[a-z][a-z0-9-]*)\}\s*$")
_RANGE = re.compile(r"\[(?P<low>-?[0-9.]+)?\.\.(?P<high>-?[0-9.]+)?\]\s*$")


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}"


@dataclass(frozen=True)
class _Source:
    """Origin of a value (``-p`` or ``-f FILE``) and the origins it overrode."""

    origin: str
    overrides: list[str] = field(default_factory=list)


class ResolvedParameters(dict[str, Any]):
    """Supplied parameter values, with the source of each one.

    Only supplied names are present, because the notebook's defaults apply to the
    rest.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sources: dict[str, _Source] = {}

    def assign(self, name: str, value: Any, origin: str) -> None:
        """Store a value, recording the earlier source it overrides."""
        earlier = self._sources.get(name)
        overrides = [*earlier.overrides, earlier.origin] if earlier else []
        self[name] = value
        self._sources[name] = _Source(origin, overrides)

    def provenance(self) -> dict[str, dict[str, Any]]:
        """Return, per name, its source (``-p`` or ``-f FILE``) and overridden ones."""
        return {
            name: {"source": source.origin, "overrides": list(source.overrides)}
            for name, source in sorted(self._sources.items())
        }


def read_parameters(nb: Mapping[str, Any]) -> list[ParamSpec]:
    """Read the declared parameters from the notebook's ``parameters`` cell.

    Raises UsageError unless exactly one cell is tagged ``parameters`` and each of its
    statements is a supported declaration.
    """
    cells = [
        cell
        for cell in nb.get("cells", [])
        if "parameters" in cell.get("metadata", {}).get("tags", [])
    ]
    if len(cells) != 1:
        raise UsageError(
            f"the notebook has {len(cells)} cells tagged 'parameters'; "
            "tag exactly one code cell that declares the parameters."
        )
    source = cells[0].get("source", "")
    if isinstance(source, list):
        source = "".join(source)
    specs = [
        ParamSpec(name, ptype, default, help_text)
        for name, ptype, default, help_text in read_parameter_cell(source)
    ]
    for spec in specs:
        _check_declared_format(spec)
    return specs


def _check_declared_format(spec: ParamSpec) -> None:
    """Raise UsageError for an unknown format, or one on a parameter not of text."""
    name = spec.format
    if name is None:
        return
    if name not in FORMATS:
        raise UsageError(
            f"the help text of parameter {spec.name!r} ends with the unknown format "
            f"{{{name}}}; use one of {', '.join(sorted(FORMATS))}."
        )
    if spec.type.base is not str:
        raise UsageError(
            f"parameter {spec.name!r} has the format {{{name}}} but the type "
            f"{spec.type}; give formats to str parameters only."
        )
    spec.check_format(spec.default, "the parameters cell")


def resolve_parameters(
    specs: Iterable[ParamSpec],
    cli: list[tuple[str, str]],
    yaml_files: list[Path],
) -> ResolvedParameters:
    """Validate ``-p NAME VALUE`` pairs and ``-f`` YAML files against the specs.

    Secret-looking names and values are rejected before any other check. Raises
    ParameterError for a rejected parameter and UsageError for an unreadable file.
    """
    by_name = {spec.name: spec for spec in specs}

    # Credentials are rejected before any other check looks at the values.
    for name, text in cli:
        _reject_secret(name, text)
    _reject_duplicates(cli)
    files = [(f"-f {path}", _load_yaml_mapping(path)) for path in yaml_files]
    for _, mapping in files:
        for name, value in mapping.items():
            _reject_secret(name, value)

    # Files apply in order and -p last, so later sources override earlier ones.
    resolved = ResolvedParameters()
    for origin, mapping in files:
        for name, value in mapping.items():
            spec = _known_spec(by_name, name)
            resolved.assign(name, check_value(spec.type, name, value, origin), origin)
    for name, text in cli:
        spec = _known_spec(by_name, name)
        resolved.assign(name, convert_text(spec.type, name, text), CLI)
    for name, value in resolved.items():
        origin = resolved.provenance()[name]["source"]
        by_name[name].check_range(value, origin)
        by_name[name].check_format(value, origin)
    return resolved


def validate_values(
    specs: Iterable[ParamSpec], values: Mapping[str, Any]
) -> dict[str, Any]:
    """Check already typed values (from an API caller) against the specs.

    Returns the values with ints widened to float where a float is declared. Raises
    ParameterError like ``resolve_parameters``.
    """
    by_name = {spec.name: spec for spec in specs}
    for name, value in values.items():
        _reject_secret(name, value)
    checked: dict[str, Any] = {}
    for name, value in values.items():
        spec = _known_spec(by_name, name)
        checked[name] = check_value(spec.type, name, value, "the caller")
        spec.check_range(checked[name], "the caller")
        spec.check_format(checked[name], "the caller")
    return checked


def check_confirmation(values: Mapping[str, Any], incident: str | None) -> None:
    """Raise ParameterError unless ``confirm`` is empty or equals ``incident``.

    ``incident`` is the id given with ``--incident``, or None when the run opens a
    new incident, whose id nobody could have confirmed.
    """
    confirm = values.get(CONFIRM_PARAM, "")
    if not confirm:
        return
    if incident is None:
        raise ParameterError(
            f"parameter {CONFIRM_PARAM!r} is given without --incident; give "
            f"--incident with the same id to carry out the actions, or leave "
            f"{CONFIRM_PARAM} empty for a dry-run."
        )
    if confirm != incident:
        raise ParameterError(
            f"parameter {CONFIRM_PARAM!r} is {confirm!r} but the incident is "
            f"{incident!r}; give {CONFIRM_PARAM} the incident id exactly, or leave "
            "it empty for a dry-run."
        )


def _reject_secret(name: str, value: Any) -> None:
    """Raise ParameterError if the name or value looks like a credential."""
    problem = looks_secret(name, value)
    if problem is None:
        return
    raise ParameterError(
        f"parameter {name!r} {problem}; put it in the environment variable named in "
        "veerunbook.toml (admin_token_env, database_url_env or [secrets] env) instead."
    )


def looks_secret(name: str, value: Any) -> str | None:
    """Describe why the name or value looks like a credential, or return None.

    The description never contains the value.
    """
    if SECRET_NAME_PARTS.intersection(name.lower().split("_")):
        return "looks like a secret"
    if _contains_url_password(value):
        return "has a value that looks like a URL with a password"
    return None


def suggest(name: str, known: Iterable[str]) -> str:
    """Return " Did you mean 'x'?" for the closest known name, or an empty string."""
    matches = difflib.get_close_matches(name, list(known), n=1)
    return f" Did you mean {matches[0]!r}?" if matches else ""


def _contains_url_password(value: Any) -> bool:
    if isinstance(value, str):
        return _URL_WITH_PASSWORD.search(value) is not None
    if isinstance(value, list):
        return any(_contains_url_password(item) for item in value)
    if isinstance(value, dict):
        return any(_contains_url_password(item) for item in value.values())
    return False


def _reject_duplicates(cli: list[tuple[str, str]]) -> None:
    seen: set[str] = set()
    for name, _ in cli:
        if name in seen:
            raise ParameterError(
                f"parameter {name!r} is given more than once with -p; give it once."
            )
        seen.add(name)


def _known_spec(by_name: Mapping[str, ParamSpec], name: str) -> ParamSpec:
    """Return the spec for ``name``, rejecting standard and unknown names."""
    if name in STANDARD_PARAMETERS:
        raise ParameterError(
            f"parameter {name!r} is set by the runner; use the --{name} option instead."
        )
    spec = by_name.get(name)
    if spec is not None:
        return spec
    known = sorted(n for n in by_name if n not in STANDARD_PARAMETERS)
    raise ParameterError(
        f"unknown parameter {name!r}.{suggest(name, known)} Known parameters: "
        f"{', '.join(known) or 'none'}."
    )


def _load_yaml_mapping(path: Path) -> dict[str, Any]:
    """Load a ``-f`` parameter file, which must contain a mapping with string keys."""
    import yaml  # loaded here because only ``-f`` needs it

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"parameter file {str(path)!r} is not UTF-8 (invalid byte at offset "
            f"{exc.start}); save it as UTF-8."
        ) from None
    except OSError as exc:
        raise UsageError(
            f"failed to read parameter file {str(path)!r}: {exc.strerror}; "
            "check the path given with -f."
        ) from None
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise UsageError(
            f"parameter file {str(path)!r} is nested too deeply; flatten it."
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(
            f"parameter file {str(path)!r} is not valid YAML{where}; fix the syntax."
        ) from None
    if not isinstance(data, dict):
        found = "nothing" if data is None else f"a {type(data).__name__}"
        raise UsageError(
            f"parameter file {str(path)!r} contains {found}, not a mapping; "
            "write one 'name: value' line per parameter."
        )
    for key in data:
        if not isinstance(key, str):
            raise UsageError(
                f"parameter file {str(path)!r} has the non-string key {key!r}; "
                "use parameter names as keys."
            )
    return data
