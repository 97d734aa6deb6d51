"""Checks a client's JSON schema before it reaches GenAI's grammar compiler (XGrammar).

A schema XGrammar cannot compile fails inside the engine's step, which ends every request of the batch and the
worker with it (measured on GenAI 2026.4). So a schema must be proven compilable here, in the HTTP process:
it must be a valid JSON Schema (the 2020-12 meta-schema, via `jsonschema`), and free of what XGrammar's
converter refuses although the meta-schema allows it (checked below, after XGrammar 0.1.31's
json_schema_converter.cc: unknown types, empty ranges, non-integral integer bounds, references it cannot
resolve, patterns that do not compile, here or in XGrammar's regex scanner: see grammar_regex.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

from openarc.serving.grammar_regex import regex_problem

_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
_INT64 = 2**63
# Keywords whose value is one schema, a list of schemas, or a map of name → schema.
_SCHEMA = ("items", "additionalProperties", "not", "contains", "propertyNames", "unevaluatedProperties")
_MAY_BE_FALSE = ("additionalProperties", "items", "unevaluatedProperties")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_RANGES = (
    ("minimum", "maximum"),
    ("minLength", "maxLength"),
    ("minItems", "maxItems"),
    ("minProperties", "maxProperties"),
)


class SchemaProblem(Exception):
    """The schema cannot constrain decoding; the message says where and why."""


def check_schema(schema: Any, compiled: bool = True) -> None:
    """Raise SchemaProblem unless `schema` is a valid JSON schema and, when it will be `compiled` into a grammar,
    one that GenAI's grammar compiler accepts."""
    if not isinstance(schema, dict):
        raise SchemaProblem("a JSON schema must be an object")
    try:
        Draft202012Validator.check_schema(schema)
        problems = ((path, _node_problem(node, schema)) for path, node in _subschemas(schema, "$"))
        found = next(((path, problem) for path, problem in problems if problem), None) if compiled else None
    except SchemaError as exc:
        where = "".join(f"[{p!r}]" for p in exc.path)
        raise SchemaProblem(f"not a valid JSON schema: {exc.message}" + (f" at {where}" if where else "")) from None
    except RecursionError:
        # The meta-schema check recurses a few frames per level: ~100 levels of `properties` exhaust the stack.
        raise SchemaProblem("the schema is nested too deeply") from None
    if found is not None:
        raise SchemaProblem(f"{found[0]}: {found[1]} (the grammar compiler refuses it)")


def _subschemas(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any] | bool]]:
    if node is False:
        yield path, node
    if not isinstance(node, dict):
        return
    yield path, node
    for key in _SCHEMA:
        # `false` there means "nothing more", which the compiler understands.
        if key in node and not (node[key] is False and key in _MAY_BE_FALSE):
            yield from _subschemas(node[key], f"{path}.{key}")
    for key in _SCHEMA_LISTS:
        for i, child in enumerate(node.get(key) or []):
            yield from _subschemas(child, f"{path}.{key}[{i}]")
    for key in _SCHEMA_MAPS:
        children = node.get(key)
        if isinstance(children, dict):
            for name, child in children.items():
                yield from _subschemas(child, f"{path}.{key}.{name}")


def _node_problem(node: dict[str, Any] | bool, root: dict[str, Any]) -> str | None:
    if isinstance(node, bool):
        return "the schema `false` accepts no value"
    types = node.get("type")
    for name in [types] if isinstance(types, str) else types or []:
        if name not in _TYPES:
            return f"unsupported type {name!r}"
    for low, high in _RANGES:
        bounds = node.get(low), node.get(high)
        if all(isinstance(b, int | float) for b in bounds) and node[low] > node[high]:
            return f"{low} {node[low]} is above {high} {node[high]}: no value fits"
    if types == "integer":
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            value = node.get(key)
            if isinstance(value, float) and (not math.isfinite(value) or value != math.floor(value)):
                return f"integer bound {key} must be a whole number, not {value}"
            if isinstance(value, int | float) and not -_INT64 <= value < _INT64:
                return f"integer bound {key} is outside the 64-bit range"
    problem = _integer_range_problem(node, types) or _array_problem(node, types) or _object_problem(node, types)
    if problem:
        return problem
    if node.get("enum") == []:
        return "an empty enum accepts no value"
    ref = node.get("$ref")
    if isinstance(ref, str) and not _resolves(ref, root):
        return f"$ref {ref!r} does not point inside this schema"
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"pattern {pattern!r} does not compile: {exc}"
        problem = regex_problem(pattern)
        if problem:
            return f"pattern {pattern!r} has {problem}"
    for name in node.get("patternProperties") or {}:
        problem = regex_problem(name)
        if problem:
            return f"patternProperties key {name!r} has {problem}"
    return None


def _typed(types: Any, name: str) -> bool:
    """The node may be of type `name`: it says so, or says no type at all."""
    return types is None or types == name or (isinstance(types, list) and name in types)


def _allows_more(value: Any) -> bool:
    # XGrammar's strict mode: an absent `items` / `additionalProperties` allows nothing beyond what is listed.
    return value is not None and value is not False


def _integer_range_problem(node: dict[str, Any], types: Any) -> str | None:
    if types != "integer" and not (isinstance(types, list) and "integer" in types):
        return None

    def bound(key: str) -> float | None:
        value = node.get(key)
        return value if isinstance(value, int | float) and math.isfinite(value) else None

    lows = [math.ceil(v) for v in [bound("minimum")] if v is not None]
    lows += [math.floor(v) + 1 for v in [bound("exclusiveMinimum")] if v is not None]
    highs = [math.floor(v) for v in [bound("maximum")] if v is not None]
    highs += [math.ceil(v) - 1 for v in [bound("exclusiveMaximum")] if v is not None]
    if lows and highs and max(lows) > min(highs):
        return "its bounds leave no integer"
    return None


def _array_problem(node: dict[str, Any], types: Any) -> str | None:
    if not _typed(types, "array"):
        return None
    prefix = node.get("prefixItems")
    fixed = len(prefix) if isinstance(prefix, list) else 0
    max_items, min_items = node.get("maxItems"), node.get("minItems")
    if isinstance(max_items, int) and max_items < fixed:
        return f"maxItems {max_items} is below the {fixed} prefixItems"
    if "contains" in node and isinstance(node.get("minContains"), int):
        min_items = max(min_items if isinstance(min_items, int) else 0, node["minContains"])
    if (
        isinstance(min_items, int)
        and min_items > fixed
        and not (_allows_more(node.get("items")) or _allows_more(node.get("unevaluatedItems")))
    ):
        return (
            f"it asks for at least {min_items} items but allows {fixed} (`items` unset or false allows no more than "
            "the prefixItems; give `items` a schema)"
        )
    return None


def _object_problem(node: dict[str, Any], types: Any) -> str | None:
    if not _typed(types, "object"):
        return None
    names = node.get("propertyNames")
    if names is not None and not isinstance(names, dict):
        return "propertyNames must be a schema object"
    if isinstance(names, dict) and names.get("type", "string") != "string":
        return "propertyNames must describe strings"
    required, max_properties = node.get("required"), node.get("maxProperties")
    if isinstance(required, list) and isinstance(max_properties, int) and max_properties < len(set(required)):
        return f"maxProperties {max_properties} is below the {len(set(required))} required properties"
    properties, min_properties = node.get("properties"), node.get("minProperties")
    listed = len(properties) if isinstance(properties, dict) else 0
    more = (
        _allows_more(node.get("additionalProperties"))
        or _allows_more(node.get("unevaluatedProperties"))
        or bool(node.get("patternProperties"))
        or names is not None
    )
    if isinstance(min_properties, int) and min_properties > listed and not more:
        return (
            f"it asks for at least {min_properties} properties but allows {listed} (`additionalProperties` unset or "
            "false allows none beyond `properties`)"
        )
    return None


def _resolves(ref: str, root: dict[str, Any]) -> bool:
    if ref == "#":
        return True
    if not ref.startswith("#/"):
        return False
    current: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(current, dict) or part not in current:
            return False
        current = current[part]
    return isinstance(current, dict | bool)
