"""deeper: a deep-learning workbench for image recognition.

The package is organised by job: ``deeper.data`` (datasets, loaders, scenes),
``deeper.models`` (model registry), ``deeper.tasks`` (what can be learnt:
classification, distillation, ...), ``deeper.train`` (the one training engine),
``deeper.accel`` (tools for trained models: quantize, prune, export, profile),
``deeper.analysis`` (plots and galleries) and ``deeper.cli`` (the ``deeper`` command).

>>> import deeper
>>> result = deeper.fit(model="lenet5", data="digits", epochs=1)   # doctest: +SKIP

For notebooks (:mod:`deeper.api`, docs/api.md): ``deeper.train(...)`` returns the trained model with its
history, ``deeper.load(run_or_file)``, ``model.predict(images)`` or ``deeper.predict(...)``,
``deeper.datasets.load(name, split)``, ``deeper.summary(model)``.
"""

__version__ = "0.1.0"


#: the Python API (:mod:`deeper.api`, :mod:`deeper.datasets`), imported on first use
_API = ("Model", "load", "predict", "summary")


def __getattr__(name: str):
    if name in ("fit", "TrainConfig"):  # imported on first use: `deeper --help` stays quick
        import deeper.train as train

        return getattr(train, name)
    if name == "train":  # the package, callable: deeper.train(...) is deeper.api.train
        import deeper.train as train

        return train
    if name in _API:
        import deeper.api as api

        return getattr(api, name)
    if name == "datasets":
        import deeper.datasets as datasets

        return datasets
    raise AttributeError(f"module 'deeper' has no attribute {name!r}")
