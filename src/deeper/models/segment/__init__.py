"""Semantic segmentation networks (the ``segment`` task): per-pixel class scores of any image size.

One module per family, each registering its models (family ``segment``):
``fcn32s``/``fcn16s``/``fcn8s`` (:mod:`.fcn`), ``unet`` (:mod:`.unet`), ``segnet``
(:mod:`.segnet`) and ``deeplabv3`` (:mod:`.deeplab`).  What they share (padding to the
network's stride, bilinear-initialised transposed convolutions) is in :mod:`.common`.
"""

from deeper.models.segment import deeplab, fcn, segnet, unet  # noqa: F401 (register the models)
from deeper.models.segment.common import SegmentationNet, Upsample, bilinear_init_, bilinear_kernel

__all__ = ["SegmentationNet", "Upsample", "bilinear_init_", "bilinear_kernel"]
