"""deeper: a deep-learning workbench for image recognition.

The package is organised by job: ``deeper.data`` (datasets, loaders),
``deeper.models`` (model registry), ``deeper.train`` (the training engine),
``deeper.analysis`` (plots and galleries) and ``deeper.cli`` (the ``deeper`` command).
"""

__version__ = "0.1.0"
