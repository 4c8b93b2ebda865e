"""Model registry and model families.

>>> from deeper.models import create_model, list_models
>>> net = create_model("deep-convnet", num_classes=10, in_chans=1)
"""

# register the families: the book's (deep_convnet, mlp, simple_convnet), the model zoo (alexnet ...
# vit, issue 3), the no-pooling M3/M5/M7 (issue 4) and the 1-bit DeepConvNet (binary, issue 6),
# the segmentation networks (segment: FCN, U-Net, SegNet, DeepLab v3, issue 20)
from deeper.models import (  # noqa: F401
    alexnet,
    binary,
    caption,
    deep_convnet,
    densenet,
    detect,
    generate,
    googlenet,
    image2image,
    lenet,
    mlp,
    nopool,
    resnet,
    segment,
    simple_convnet,
    vgg,
    vit,
)
from deeper.models.convolutionalize import convolutionalize
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
    "convolutionalize",
    "create_model",
    "get_model_entry",
    "list_models",
    "load_weights",
    "model_from_weights",
    "register_model",
    "save_weights",
]
