"""Model registry and model families.

>>> from deeper.models import create_model, list_models
>>> net = create_model("deep-convnet", num_classes=10, in_chans=1)
"""

from deeper.models import deep_convnet, mlp  # noqa: F401  (register the families)
from deeper.models.registry import (
    ModelEntry,
    count_parameters,
    create_model,
    get_model_entry,
    list_models,
    register_model,
)
from deeper.models.weights import load_weights, model_from_weights, save_weights

__all__ = [
    "ModelEntry",
    "count_parameters",
    "create_model",
    "get_model_entry",
    "list_models",
    "load_weights",
    "model_from_weights",
    "register_model",
    "save_weights",
]
