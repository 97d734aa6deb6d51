"""Model lookup shared by every endpoint."""

from __future__ import annotations

from openarc.engine.engine import Engine, ServedModel
from openarc.protocol.models import ModelCard, ModelList
from openarc.serving.errors import model_not_found


def resolve(engine: Engine, model_id: str) -> ServedModel:
    model = engine.get(model_id)
    if model is None:
        raise model_not_found(model_id)
    return model


def model_card(model: ServedModel) -> ModelCard:
    return ModelCard(id=model.id, created=model.created)


def model_list(engine: Engine) -> ModelList:
    return ModelList(data=[model_card(model) for model in engine.models.values()])
