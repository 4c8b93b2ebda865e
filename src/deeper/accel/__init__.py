"""Tools that take a trained model apart or make it smaller and faster: section 8.3 of the notes.

- :mod:`~deeper.accel.fsdp`: model parallelism (parameters sharded across ranks);
- :mod:`~deeper.accel.quantize`: int8 (static and QAT), 4-bit weight-only, binarized networks;
- :mod:`~deeper.accel.prune`, :mod:`~deeper.accel.distill`, :mod:`~deeper.accel.export`,
  :mod:`~deeper.accel.profile`: pruning, distillation measured, ONNX export, per-layer-type timing.

What the training loop itself uses to go faster (mixed precision, ``torch.compile``,
CUDA graphs, DDP and the ``--nproc`` launcher) lives with the engine, in
:mod:`deeper.train` (``amp``, ``compile``, ``graphs``, ``distributed``, ``launch``).

Submodules are imported on demand (``deeper.accel.quantize`` pulls in
``torch.ao``; ``export`` needs onnx/onnxruntime from the ``accel`` extra).
"""
