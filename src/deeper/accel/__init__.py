"""Making training and inference faster: the tools of section 8.3 of the notes.

- :mod:`~deeper.accel.amp`: one ``--amp bf16|fp16`` switch (autocast + grad scaler);
- :mod:`~deeper.accel.compile`: ``torch.compile`` with a clean fallback;
- :mod:`~deeper.accel.distributed`: DDP under torchrun, ``--nproc`` launcher, fault tolerance;
- :mod:`~deeper.accel.fsdp`: model parallelism (parameters sharded across ranks);
- :mod:`~deeper.accel.quantize`: int8 (static and QAT), 4-bit weight-only, binarized networks;
- :mod:`~deeper.accel.prune`, :mod:`~deeper.accel.distill`, :mod:`~deeper.accel.export`,
  :mod:`~deeper.accel.profile`: pruning, distillation, ONNX export, per-layer-type timing.

Submodules are imported on demand (``deeper.accel.quantize`` pulls in
``torch.ao``; ``export`` needs onnx/onnxruntime from the ``accel`` extra).
"""
