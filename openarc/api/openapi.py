"""`GET /openapi.json`: every route the daemon serves, with request and response bodies generated from the protocol
Structs, so the description cannot drift from what the server decodes and writes."""

from __future__ import annotations

import functools
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openarc import __version__
from openarc.config import ModelConfig
from openarc.engine.replica import ReplicaState
from openarc.protocol import base
from openarc.protocol.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from openarc.protocol.completions import Completion, CompletionRequest
from openarc.protocol.models import ModelCard, ModelList

Schema = dict[str, Any]
_STRUCTS = (
    ChatCompletionRequest,
    ChatCompletion,
    ChatCompletionChunk,
    CompletionRequest,
    Completion,
    ModelCard,
    ModelList,
    base.ErrorResponse,
    ModelConfig,
)

# Error responses: the OpenAI error object, under the name each status gets in `components.responses`.
_ERRORS = {
    "400": ("BadRequest", "The body is not valid, or asks for something this server or model does not support."),
    "401": ("Unauthorized", "The API key is missing or wrong."),
    "403": ("Forbidden", "An API key was sent where an admin key is needed."),
    "404": ("NotFound", "No model (or device) of that name is served here."),
    "409": ("Conflict", "A model with that id is already served."),
    "413": ("PayloadTooLarge", "The body is larger than server.max_request_bytes."),
    "429": ("TooManyRequests", "The model's queue is full; retry after the Retry-After seconds."),
    "503": ("ServiceUnavailable", "The model is not available (loading, restarting or failed), or its engine failed."),
    "504": ("GatewayTimeout", "The request did not finish within server.request_timeout."),
}
_ERROR_HEADERS = {
    "401": {"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}},
    "429": {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
}
_GENERATION_ERRORS = ("400", "401", "404", "413", "429", "503", "504")
_OPEN: list[Schema] = []
# /metrics needs a key only with server.metrics_require_key.
_KEY_OPTIONAL: list[Schema] = [{}, {"bearer": []}]

_HEALTH: Schema = {
    "type": "object",
    "properties": {"status": {"const": "ok"}},
    "required": ["status"],
}
_READY: Schema = {
    "type": "object",
    "properties": {
        "status": {"enum": ["ready", "not_ready", "draining"]},
        # Model id → the state of each of its replicas.
        "models": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"enum": [s.value for s in ReplicaState]}},
        },
    },
    "required": ["status", "models"],
}
_NULLABLE_INT: Schema = {"type": ["integer", "null"]}
_NULLABLE_NUMBER: Schema = {"type": ["number", "null"]}
_REPLICA: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "device": {"type": "string"},
        "state": {"enum": [s.value for s in ReplicaState]},
        "error": {"type": ["string", "null"]},
        "pid": _NULLABLE_INT,
        "load_seconds": _NULLABLE_NUMBER,
        "restarts": {"type": "integer", "minimum": 0},
        "active": {"type": "integer", "minimum": 0},
        "waiting": {"type": "integer", "minimum": 0},
        "steps": {"type": "integer", "minimum": 0},
        "step_seconds": {"type": "number", "minimum": 0},
        "step_sequences": {"type": "integer", "minimum": 0},
        "max_batch": {"type": "integer", "minimum": 0},
        "generated_tokens": {"type": "integer", "minimum": 0},
        "kv_cache_usage": {"type": "number"},
        "max_vision_ms": {"type": "number"},
    },
}
_REPLICA["required"] = list(_REPLICA["properties"])
_MODEL_STATUS: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "status": {"enum": ["ready", "loading", "failed", "unloaded"]},
        "task": {"type": "string"},
        "source": {"type": "string"},
        "context_length": _NULLABLE_INT,
        "speculative_decoding": {"type": ["object", "null"]},
        "replicas": {"type": "array", "items": _REPLICA},
    },
    "required": ["id", "status", "task", "source", "context_length", "speculative_decoding", "replicas"],
}
_UNLOADED: Schema = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "status": {"const": "unloaded"}},
    "required": ["id", "status"],
}
_MODEL_INFO: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string"},
        "source": {"type": "string"},
        "local_path": {"type": "string"},
        "architecture": {"type": "object"},
        "context_length": _NULLABLE_INT,
        "tokenizer": {"type": ["object", "null"]},
        "generation_defaults": {"type": "object"},
    },
    "required": [
        "id",
        "status",
        "source",
        "local_path",
        "architecture",
        "context_length",
        "tokenizer",
        "generation_defaults",
    ],
}
_RELOAD: Schema = {
    "type": "object",
    "properties": {
        key: {"type": "array", "items": {"type": "string"}} for key in ("added", "removed", "changed", "unchanged")
    },
    "required": ["added", "removed", "changed", "unchanged"],
}
_DEVICE_LIST: Schema = {
    "type": "object",
    "properties": {
        "object": {"const": "list"},
        "data": {"type": "array", "items": {"type": "object", "required": ["name"]}},
    },
    "required": ["object", "data"],
}
_DEVICE: Schema = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "properties": {"type": "object"}},
    "required": ["name", "properties"],
}
_MODEL_STATUS_LIST: Schema = {
    "type": "object",
    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": _MODEL_STATUS}},
    "required": ["object", "data"],
}
_RUNTIME: Schema = {
    "type": "object",
    "properties": {
        "pid": {"type": "integer"},
        "loop_lag": {
            "type": "object",
            "properties": {
                "samples": {"type": "integer", "minimum": 0},
                "p50_ms": {"type": "number"},
                "p99_ms": {"type": "number"},
                "max_ms": {"type": "number"},
            },
            "required": ["samples"],
        },
        "cpu_seconds": {"type": "number"},
        "rss_bytes": _NULLABLE_INT,
    },
    "required": ["pid", "loop_lag", "cpu_seconds", "rss_bytes"],
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _events(payload: str) -> Schema:
    """An SSE stream, its `schema` read as one event (OpenAPI 3.2's rule): JSON payloads, then `[DONE]`.

    An engine failure after the 200 arrives as an error object event before `[DONE]`.
    """
    data = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"anyOf": [_ref(payload), _ref("ErrorResponse")]},
    }
    event = {"type": "object", "properties": {"data": {"anyOf": [{"const": "[DONE]"}, data]}}, "required": ["data"]}
    return {"text/event-stream": {"schema": event}}


def _operation(
    summary: str,
    ok: Schema,
    errors: tuple[str, ...] = (),
    *,
    body: str | None = None,
    security: list[Schema] | None = None,
    parameters: list[Schema] | None = None,
    extra: dict[str, Schema] | None = None,
    status: str = "200",
) -> Schema:
    responses: dict[str, Schema] = {status: {"description": "OK", "content": ok}}
    responses.update(extra or {})
    responses.update({status: {"$ref": f"#/components/responses/{_ERRORS[status][0]}"} for status in errors})
    operation: Schema = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _json(_ref(body))}
    if parameters:
        operation["parameters"] = parameters
    if security is not None:
        operation["security"] = security
    return operation


def _paths() -> Schema:
    model_id = {
        "name": "model_id",
        "in": "path",
        "required": True,
        "description": "A served model id; it may contain `/`.",
        "schema": {"type": "string"},
    }
    reset = {
        "name": "reset",
        "in": "query",
        "description": "`1` or `true` clears the event-loop lag samples after reading them; other values are ignored.",
        "schema": {"type": "string"},
    }
    drain = {
        "name": "drain",
        "in": "query",
        "description": "`true` waits (up to server.drain_timeout) for running requests; else they fail at once.",
        "schema": {"enum": ["true", "false", "1", "0"]},
    }
    device = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    not_ready = {"description": "A model is loading or failed, or the server is draining.", "content": _json(_READY)}
    return {
        "/v1/chat/completions": {
            "post": _operation(
                "Chat completion: a JSON object, or an SSE stream of chunks when `stream` is true.",
                _json(_ref("ChatCompletion")) | _events("ChatCompletionChunk"),
                _GENERATION_ERRORS,
                body="ChatCompletionRequest",
            )
        },
        "/v1/completions": {
            "post": _operation(
                "Text completion: a JSON object, or an SSE stream of chunks when `stream` is true.",
                _json(_ref("Completion")) | _events("Completion"),
                _GENERATION_ERRORS,
                body="CompletionRequest",
            )
        },
        "/v1/models": {"get": _operation("The served models.", _json(_ref("ModelList")), ("401",))},
        "/v1/models/{model_id}": {
            "get": _operation("One served model.", _json(_ref("ModelCard")), ("401", "404"), parameters=[model_id])
        },
        "/health": {"get": _operation("The process answers.", _json(_HEALTH), security=_OPEN)},
        "/ready": {
            "get": _operation("Every model can take requests.", _json(_READY), security=_OPEN, extra={"503": not_ready})
        },
        "/metrics": {
            "get": _operation(
                "Prometheus metrics.", {"text/plain": {"schema": {"type": "string"}}}, ("401",), security=_KEY_OPTIONAL
            )
        },
        "/openarc/models": {
            "get": _operation("Each model's replicas and their counters.", _json(_MODEL_STATUS_LIST), ("401", "403")),
            "post": _operation(
                "Load a model from a spec shaped like a config `models` entry; it loads in the background.",
                _json(_MODEL_STATUS),
                ("400", "401", "403", "409", "413"),
                body="ModelConfig",
                status="202",
            ),
        },
        "/openarc/models/{model_id}": {
            "delete": _operation(
                "Unload a model: its workers exit. `drain=true` lets running requests finish first.",
                _json(_UNLOADED),
                ("400", "401", "403", "404"),
                parameters=[model_id, drain],
            )
        },
        "/openarc/models/{model_id}/info": {
            "get": _operation(
                "Architecture metadata, tokenizer facts, context length and generation defaults of a model.",
                _json(_MODEL_INFO),
                ("401", "403", "404"),
                parameters=[model_id],
            )
        },
        "/openarc/config/reload": {
            "post": _operation(
                "Re-read the YAML config and apply its `models`: new ones load, missing ones unload, changed ones "
                "are replaced, the rest are untouched. An invalid file changes nothing.",
                _json(_RELOAD),
                ("400", "401", "403"),
            )
        },
        "/openarc/devices": {
            "get": _operation("The OpenVINO devices of this machine.", _json(_DEVICE_LIST), ("401", "403"))
        },
        "/openarc/devices/{name}": {
            "get": _operation(
                "Every property of one OpenVINO device.", _json(_DEVICE), ("401", "403", "404"), parameters=[device]
            )
        },
        "/openarc/runtime": {
            "get": _operation(
                "The HTTP process: event-loop lag, CPU time, memory.",
                _json(_RUNTIME),
                ("401", "403"),
                parameters=[reset],
            )
        },
        "/openapi.json": {
            "get": _operation(
                "This document.", _json({"type": "object", "required": ["openapi", "paths"]}), security=_OPEN
            )
        },
    }


def _written_fields_required(schemas: dict[str, Schema]) -> None:
    """Response Structs write every field, `null` and defaults included, except those left UNSET: say so."""
    pending: list[type[msgspec.Struct]] = [base.Response]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        schema = schemas.get(cls.__name__)
        if schema is None or cls.__struct_config__.omit_defaults:
            continue
        fields = msgspec.structs.fields(cls)
        schema["required"] = [field.encode_name for field in fields if field.default is not msgspec.UNSET]


def build() -> Schema:
    _, schemas = msgspec.json.schema_components(_STRUCTS, ref_template="#/components/schemas/{name}")
    _written_fields_required(schemas)
    responses: dict[str, Schema] = {
        name: {"description": description, "content": _json(_ref("ErrorResponse"))}
        for name, description in _ERRORS.values()
    }
    for status, headers in _ERROR_HEADERS.items():
        responses[_ERRORS[status][0]]["headers"] = headers
    return {
        "openapi": "3.1.0",
        "info": {"title": "OpenArc", "version": __version__, "description": "OpenAI-compatible LLM serving."},
        "paths": _paths(),
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


@functools.cache
def document() -> bytes:
    return msgspec.json.encode(build())


async def openapi(request: Request) -> Response:
    return Response(document(), media_type="application/json")


routes = [Route("/openapi.json", openapi, methods=["GET"])]
