"""The model zoo: encoders, fusion blocks and the papers' models behind one registry.

``create_model(name, num_classes=8, **config)``, ``list_models(kind=None)``, ``model_info(name)``;
the input contract the trainer relies on is documented in :mod:`avemo.models.registry`.
Importing this package (which any ``import avemo.models.X`` does first) registers the built-in
encoders and fusion models.
"""

from avemo.models import encoders, fusion  # noqa: F401  (registers the built-in models)
from avemo.models.base import AvemoModel, Encoder, UnimodalModel
from avemo.models.inputs import InputSpec, ModelInputError, check_inputs, example_inputs
from avemo.models.registry import (
    count_parameters,
    create_model,
    default_dialogue_context,
    default_inputs,
    get_encoder,
    list_aliases,
    list_models,
    model_info,
    register_alias,
    register_model,
    smoke_config,
)

__all__ = [
    "AvemoModel",
    "Encoder",
    "InputSpec",
    "ModelInputError",
    "UnimodalModel",
    "check_inputs",
    "count_parameters",
    "create_model",
    "default_dialogue_context",
    "default_inputs",
    "example_inputs",
    "get_encoder",
    "list_aliases",
    "list_models",
    "model_info",
    "register_alias",
    "register_model",
    "smoke_config",
]
