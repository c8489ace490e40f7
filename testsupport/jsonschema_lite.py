"""A small JSON Schema validator for the subset pydantic and :func:`inference.schemas.request_schema` emit
(type, properties, required, additionalProperties, items, enum, const, anyOf, oneOf, allOf, $ref into $defs /
components, minimum/maximum, minLength). Used by tests to hold responses to the *published* schema without a
jsonschema dependency."""

from __future__ import annotations

from typing import Any

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is_type(x: Any, t: str) -> bool:
    if t == "number":
        return isinstance(x, int | float) and not isinstance(x, bool)
    if t == "integer":
        return isinstance(x, int) and not isinstance(x, bool)
    return isinstance(x, _TYPES[t])


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def validate(x: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, path: str = "$") -> list[str]:
    """Every violation as ``path: problem`` (empty list = valid)."""
    root = root if root is not None else schema
    if "$ref" in schema:
        return validate(x, _resolve(schema["$ref"], root), root, path)
    errs: list[str] = []
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if not any(_is_type(x, tt) for tt in types):
            return [f"{path}: expected {t}, got {type(x).__name__}"]
    if "const" in schema and x != schema["const"]:
        errs.append(f"{path}: expected const {schema['const']!r}")
    if "enum" in schema and x not in schema["enum"]:
        errs.append(f"{path}: {x!r} not in {schema['enum']}")
    if isinstance(x, int | float) and not isinstance(x, bool):
        if "minimum" in schema and x < schema["minimum"]:
            errs.append(f"{path}: {x} < minimum {schema['minimum']}")
        if "maximum" in schema and x > schema["maximum"]:
            errs.append(f"{path}: {x} > maximum {schema['maximum']}")
    if isinstance(x, str) and "minLength" in schema and len(x) < schema["minLength"]:
        errs.append(f"{path}: shorter than {schema['minLength']}")
    if isinstance(x, dict):
        props = schema.get("properties", {})
        for r in schema.get("required", []):
            if r not in x:
                errs.append(f"{path}: missing required {r!r}")
        for k, v in x.items():
            if k in props:
                errs += validate(v, props[k], root, f"{path}.{k}")
            else:
                ap = schema.get("additionalProperties", True)
                if ap is False:
                    errs.append(f"{path}: unexpected property {k!r}")
                elif isinstance(ap, dict):
                    errs += validate(v, ap, root, f"{path}.{k}")
    if isinstance(x, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(x):
            errs += validate(v, schema["items"], root, f"{path}[{i}]")
    if "anyOf" in schema and not any(not validate(x, s, root, path) for s in schema["anyOf"]):
        errs.append(f"{path}: matches none of anyOf")
    if "oneOf" in schema and sum(not validate(x, s, root, path) for s in schema["oneOf"]) != 1:
        errs.append(f"{path}: must match exactly one of oneOf")
    for s in schema.get("allOf", []):
        errs += validate(x, s, root, path)
    return errs
