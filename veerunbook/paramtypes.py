"""Declared parameter types: reading the ``parameters`` cell, checking and converting.

The cell is read with ``ast`` and never executed, so a default must be a literal.
Help texts are the trailing comments, read with ``tokenize``.
"""

from __future__ import annotations

import ast
import io
import math
import re
import sys
import tokenize
from dataclasses import dataclass
from typing import Any, NoReturn

from veerunbook.errors import ParameterError, UsageError

SCALARS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
BASES: dict[str, type] = {**SCALARS, "list": list, "dict": dict}
_INTEGER = re.compile(r"[+-]?[0-9]+")
_MAX_SHOWN = 40
CLI = "-p"
"""Origin of values given on the command line as ``-p NAME VALUE``."""


@dataclass(frozen=True)
class ParamType:
    """A declared type: a base type, an optional element type and None allowed or not.

    ``item`` is the element type of ``list[T]`` and the value type of
    ``dict[str, T]``.
    """

    base: type
    item: type | None = None
    optional: bool = False

    def __str__(self) -> str:
        text = self.base.__name__
        if self.item is not None:
            key = "str, " if self.base is dict else ""
            text = f"{text}[{key}{self.item.__name__}]"
        return f"{text} | None" if self.optional else text


def read_parameter_cell(source: str) -> list[tuple[str, ParamType, Any, str]]:
    """Parse declarations into (name, type, default, help) tuples, in cell order."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise UsageError(
            f"the parameters cell has a syntax error at line {exc.lineno}; fix it."
        ) from None
    comments = _comments_by_line(source)
    declarations = []
    for node in tree.body:
        name, annotation, value = _declaration_parts(node)
        default = _literal_default(name, value)
        ptype = _declared_type(name, annotation, default)
        check_value(ptype, name, default, "the parameters cell")
        help_text = next(
            (comments[line] for line in _lines(node) if line in comments), ""
        )
        declarations.append((name, ptype, default, help_text))
    return declarations


def check_value(ptype: ParamType, name: str, value: Any, origin: str) -> Any:
    """Return ``value`` if it already has the declared type (int widened to float).

    Raises ParameterError naming the parameter, the value, the type and the fix.
    """
    if value is None:
        if ptype.optional:
            return None
        _reject(name, origin, value, ptype, "give a value; None is not allowed")
    if not _has_base(ptype.base, value):
        _reject(name, origin, value, ptype, _fix_for(ptype.base, origin))
    if ptype.base is float:
        return float(value)
    if ptype.base in (list, dict) and not _json_compatible(value):
        _reject(
            name,
            origin,
            value,
            ptype,
            "use strings, finite numbers, booleans, "
            "lists and mappings with string keys only",
        )
    if ptype.item is not None:
        return _check_items(ptype, name, value, origin)
    return value


def convert_text(ptype: ParamType, name: str, text: str) -> Any:
    """Convert a ``-p`` string by the declared type, never by guessing from the text."""
    if ptype.optional and text == "None":
        return None
    base = ptype.base
    if base is str:
        return text
    if base is bool and text in ("True", "False"):
        return text == "True"
    if base is int and _INTEGER.fullmatch(text):
        return int(text)
    if base is float:
        return _convert_float(ptype, name, text)
    if base in (list, dict):
        import yaml  # loaded here because only list and dict values need it

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            _reject(name, CLI, text, ptype, _fix_for(base, CLI))
        return check_value(ptype, name, value, CLI)
    _reject(name, CLI, text, ptype, _fix_for(base, CLI))


def _convert_float(ptype: ParamType, name: str, text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        _reject(name, CLI, text, ptype, _fix_for(float, CLI))
    if not math.isfinite(number):
        _reject(name, CLI, text, ptype, _fix_for(float, CLI))
    return number


def _reject(name: str, origin: str, value: Any, ptype: ParamType, fix: str) -> NoReturn:
    value_text = repr(value)
    if len(value_text) > _MAX_SHOWN:
        value_text = value_text[: _MAX_SHOWN - 3] + "..."
    if origin != CLI:
        value_text = f"{value_text} ({type(value).__name__})"
    raise ParameterError(
        f"parameter {name!r} from {origin} has invalid value {value_text} for type "
        f"{ptype}; {fix}."
    )


def _fix_for(base: type, origin: str) -> str:
    from_text = origin == CLI
    fixes = {
        bool: "use True or False" if from_text else "use true or false",
        int: "use a whole number such as 3",
        float: "use a finite number such as 2.5",
        str: "quote the value so that YAML reads it as a string",
        list: "use a list such as [api, worker]",
        dict: "use a mapping such as {team: sre}",
    }
    return fixes[base]


def _has_base(base: type, value: Any) -> bool:
    if isinstance(value, bool):
        return base is bool
    if base is float:
        if isinstance(value, int):
            return abs(value) <= sys.float_info.max
        return isinstance(value, float) and math.isfinite(value)
    return isinstance(value, base)


def _check_items(ptype: ParamType, name: str, value: Any, origin: str) -> Any:
    """Check the elements of a list or the values of a dict, widening ints to float."""
    assert ptype.item is not None
    items = value if isinstance(value, list) else list(value.values())
    for item in items:
        if not _has_base(ptype.item, item):
            _reject(name, origin, value, ptype, _fix_for(ptype.item, origin))
    if ptype.item is not float:
        return value
    if isinstance(value, list):
        return [float(item) for item in value]
    return {key: float(item) for key, item in value.items()}


def _json_compatible(value: Any) -> bool:
    """Tell whether ``value`` survives strict JSON unchanged (no NaN, no dates)."""
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_json_compatible(item) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and _json_compatible(item)
            for key, item in value.items()
        )
    return False


def _declaration_parts(node: ast.stmt) -> tuple[str, ast.expr | None, ast.expr]:
    """Split ``name: type = default`` or ``name = default`` into its parts."""
    if (
        isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.value is not None
    ):
        return node.target.id, node.annotation, node.value
    if (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
    ):
        return node.targets[0].id, None, node.value
    raise UsageError(
        f"line {node.lineno} of the parameters cell is not a declaration; write "
        "'name: type = default  # help' and move other code to a later cell."
    )


def _literal_default(name: str, value: ast.expr) -> Any:
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise UsageError(
            f"the default of parameter {name!r} is not a literal; use a constant "
            "such as 5, 'text', [] or {}."
        ) from None


def _declared_type(name: str, annotation: ast.expr | None, default: Any) -> ParamType:
    if annotation is not None:
        ptype = _parse_annotation(annotation)
        if ptype is None:
            raise UsageError(
                f"parameter {name!r} has the unsupported type "
                f"{ast.unparse(annotation)!r}; use one of {', '.join(BASES)}, "
                "list[T], dict[str, T] or T | None."
            )
        return ptype
    for type_name in ("bool", *BASES):
        if type(default) is BASES[type_name]:
            return ParamType(BASES[type_name])
    raise UsageError(
        f"parameter {name!r} has no annotation and its default {default!r} gives no "
        "type; write 'name: type = default'."
    )


def _parse_annotation(node: ast.expr) -> ParamType | None:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        for inner, other in ((node.left, node.right), (node.right, node.left)):
            if isinstance(other, ast.Constant) and other.value is None:
                ptype = _parse_annotation(inner)
                if ptype is None or ptype.optional:
                    return None
                return ParamType(ptype.base, ptype.item, optional=True)
        return None
    if isinstance(node, ast.Name) and node.id in BASES:
        return ParamType(BASES[node.id])
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        return _parse_generic(node.value.id, node.slice)
    return None


def _parse_generic(base: str, args: ast.expr) -> ParamType | None:
    if base == "list" and isinstance(args, ast.Name) and args.id in SCALARS:
        return ParamType(list, SCALARS[args.id])
    if (
        base == "dict"
        and isinstance(args, ast.Tuple)
        and len(args.elts) == 2
        and all(isinstance(arg, ast.Name) for arg in args.elts)
    ):
        key, value = (arg.id for arg in args.elts if isinstance(arg, ast.Name))
        if key == "str" and value in SCALARS:
            return ParamType(dict, SCALARS[value])
    return None


def _comments_by_line(source: str) -> dict[int, str]:
    comments: dict[int, str] = {}
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    for token in tokens:
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    return comments


def _lines(node: ast.stmt) -> range:
    return range(node.lineno, (node.end_lineno or node.lineno) + 1)
