"""Object detectors (family ``detect``): R-CNN, SPPNet, Fast R-CNN, Faster R-CNN, YOLO v1 and SSD.

Each registers with :func:`deeper.models.registry.register_model`; the detection task
(:mod:`deeper.tasks.detect`) trains them.  See :mod:`deeper.models.detect.base` for what a
detector answers in training and in eval mode.
"""

from deeper.models.detect import (
    fast_rcnn,  # noqa: F401
    region,  # noqa: F401
    ssd,  # noqa: F401
    yolo,  # noqa: F401
)
