"""Request bodies: JSON → msgspec Struct, with errors that name the offending field."""

from __future__ import annotations

import logging
import re
from typing import Any, TypeVar

import msgspec

from openarc.serving.errors import invalid_request

log = logging.getLogger("openarc.api")
T = TypeVar("T", bound=msgspec.Struct)
_AT_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"missing required field `(?P<name>[^`]+)`")
_object_keys = msgspec.json.Decoder(dict[str, msgspec.Raw])
_unknown_fields_logged: set[str] = set()
_decoders: dict[type, msgspec.json.Decoder[Any]] = {}
_optional_fields: dict[type, frozenset[str]] = {}
_TOO_DEEP = "The request body is nested too deeply."
_NULL = msgspec.Raw(b"null")


def decode_body(body: bytes, schema: type[T]) -> T:
    try:
        fields = _object_keys.decode(body)
    except msgspec.ValidationError:
        raise invalid_request("The request body must be a JSON object.") from None
    except msgspec.DecodeError as exc:
        raise invalid_request(f"The request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise invalid_request(_TOO_DEEP) from None
    _log_unknown_fields(fields.keys() - set(schema.__struct_fields__))
    nulls = [name for name in _optional(schema) & fields.keys() if fields[name] == _NULL]
    if nulls:
        # OpenAI's optional fields are all nullable ("n": null, "stream": null): null means unset, as omitted would.
        body = msgspec.json.encode({name: value for name, value in fields.items() if name not in nulls})
    try:
        decoder = _decoders.get(schema) or _decoders.setdefault(schema, msgspec.json.Decoder(schema))
        result: T = decoder.decode(body)
        return result
    except RecursionError:
        raise invalid_request(_TOO_DEEP) from None
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _AT_PATH.search(message) or _MISSING.search(message)
        param = (match.groupdict().get("path") or match.groupdict().get("name")) if match else None
        raise invalid_request(message, param or None) from None


def _optional(schema: type[msgspec.Struct]) -> frozenset[str]:
    """The wire names of the schema's top-level fields that have a default."""
    names = _optional_fields.get(schema)
    if names is None:
        names = frozenset(f.encode_name for f in msgspec.structs.fields(schema) if not f.required)
        _optional_fields[schema] = names
    return names


def _log_unknown_fields(names: set[str]) -> None:
    """Accept fields we do not know (clients send extras), but say so once per name."""
    for name in sorted(names - _unknown_fields_logged):
        _unknown_fields_logged.add(name)
        log.warning("ignoring unknown request field %r (logged once)", name[:64])
