"""`/v1/models` shapes."""

from __future__ import annotations

from typing import Literal

from openarc.protocol.base import Response


class ModelCard(Response, kw_only=True):
    id: str
    created: int
    owned_by: str = "openarc"
    object: Literal["model"] = "model"


class ModelList(Response, kw_only=True):
    data: list[ModelCard]
    object: Literal["list"] = "list"
