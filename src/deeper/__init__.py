"""deeper: a deep-learning workbench for image recognition.

The package is organised by job: ``deeper.data`` (datasets, loaders, scenes),
``deeper.models`` (model registry), ``deeper.tasks`` (what can be learnt:
classification, distillation, ...), ``deeper.train`` (the one training engine),
``deeper.accel`` (tools for trained models: quantize, prune, export, profile),
``deeper.analysis`` (plots and galleries) and ``deeper.cli`` (the ``deeper`` command).

>>> import deeper
>>> result = deeper.fit(model="lenet5", data="digits", epochs=1)
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("fit", "TrainConfig"):  # imported on first use: `deeper --help` stays quick
        import deeper.train as train

        return getattr(train, name)
    raise AttributeError(f"module 'deeper' has no attribute {name!r}")
