"""The config schema (`src/visdial_lg/resources/config.schema.yaml`): the one source of
keys, types and defaults, and validation against it.

`validate` checks a plain config dict in place and fills the schema's defaults, after
reading strings as the types the schema declares (`coerce`). Needs only `yaml` and
`jsonschema`, so that the Snakefile can use it at parse time; `core.config` builds the
typed config on top of it.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from .errors import VisdialLGError

# Inside the package, so that an installed wheel validates configs as the workflow does.
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "resources" / "config.schema.yaml"


class ConfigError(VisdialLGError, ValueError):
    """A configuration problem, with a one-line message naming the culprit."""


def _schema() -> dict:
    with open(SCHEMA_PATH) as f:
        return yaml.safe_load(f)


def _validator_with_defaults(schema: dict):
    """A Draft 2020-12 validator that fills in `default:` values as it goes."""
    base = jsonschema.Draft202012Validator

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from base.VALIDATORS["properties"](validator, properties, instance, schema)

    cls = jsonschema.validators.extend(base, {"properties": set_defaults})
    return cls(schema)


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(known))
        hint = f" (known keys: {', '.join(known)})" if known else ""
        prefix = f"{where}." if error.absolute_path else ""
        return f"unknown config key '{prefix}{extra[0]}'{hint}"
    return f"config key '{where}': {error.message}"


# Strings that stand for a value of another type, as YAML writes them. They reach
# us as strings from nested `--config` values (Snakemake reads those with YAML's
# BaseLoader: every scalar a string) and from YAML 1.1 files (PyYAML reads `1e-3`
# as a string: a YAML 1.1 float needs a dot).
_BOOLEANS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
_NULLS = {"null", "~", ""}
_INTEGER = re.compile(r"[-+]?[0-9]+")
_NUMBER = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_NO_VALUE = object()
_JSON_TYPES = {type(None): "null", bool: "boolean", int: "integer", float: "number"}


def _from_string(text: str, kind: str):
    """`text` read as a value of JSON-schema type `kind`, or _NO_VALUE where it is none."""
    word = text.strip()
    if kind == "null":
        return None if word.lower() in _NULLS else _NO_VALUE
    if kind == "boolean":
        return _BOOLEANS.get(word.lower(), _NO_VALUE)
    if kind in ("integer", "number"):
        if _INTEGER.fullmatch(word):
            return int(word)
        if _NUMBER.fullmatch(word):
            number = float(word)
            if kind == "number":
                return number
            if number.is_integer():  # 1e3 or 5.0 for an integer key
                return int(number)
    return _NO_VALUE


def _coerce_string(text: str, schema: Mapping):
    """A string read as the type `schema` declares for it; left as it is where the
    schema allows a string or no reading fits (validation then names the key)."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        if "string" in kinds:
            return text
        for kind in ("null", "boolean", "integer", "number"):  # most specific first
            if kind in kinds and (value := _from_string(text, kind)) is not _NO_VALUE:
                return value
        return text
    if "enum" in schema and text not in schema["enum"]:  # e.g. features.depth: enum [50, 101]
        for member in schema["enum"]:
            kind = _JSON_TYPES.get(type(member))
            if kind and (value := _from_string(text, kind)) is not _NO_VALUE:
                if type(value) is type(member) and value == member:
                    return member
    return text


def coerce(value: Any, schema: Mapping) -> Any:
    """Convert strings in `value` to the types `schema` declares for them, in place in
    dicts and lists (objects through properties/additionalProperties, arrays through
    prefixItems/items); return the converted value."""
    if isinstance(value, str):
        return _coerce_string(value, schema)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, extra)
            if isinstance(sub, Mapping):
                value[key] = coerce(item, sub)
    elif isinstance(value, list):
        prefix = schema.get("prefixItems", [])
        items = schema.get("items")
        for i, item in enumerate(value):
            sub = prefix[i] if i < len(prefix) else items
            if isinstance(sub, Mapping):
                value[i] = coerce(item, sub)
    return value


def validate(config: dict) -> dict:
    """Validate `config` in place, filling defaults; raise ConfigError on the first problem.

    Strings where the schema declares an integer, number, boolean or null are first
    read as that type (`coerce`), so that `--config train='{epochs: 5}'` and a
    YAML file's `lr: 1e-3` validate; a string that reads as none fails as before."""
    schema = _schema()
    coerce(config, schema)
    validator = _validator_with_defaults(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        raise ConfigError(_describe(errors[0]))
    return config
