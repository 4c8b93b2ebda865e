"""``fit``: the one entry point for training, from Python and from ``deeper train``.

It chooses how a configuration is trained: the from-scratch NumPy/CuPy engine
(``engine``), an ensemble of members (``ensemble`` > 1: bagging, boosting or
seeds), several processes under torchrun (``nproc`` > 1), or the engine in this
process (:func:`deeper.train.engine.run_engine`).

>>> from deeper import fit
>>> result = fit(model="lenet5", data="digits", epochs=1)
>>> result["test_accuracy"]
"""

from __future__ import annotations

from collections.abc import Callable

from deeper.errors import ConfigError
from deeper.runtime import notice
from deeper.train.callbacks import Callback
from deeper.train.config import TrainConfig


def fit(
    cfg: TrainConfig | None = None,
    *,
    resume: bool = False,
    callbacks: list[Callback] | None = None,
    log: Callable[[str], None] = notice,
    **options,
) -> dict:
    """Train ``cfg`` (or a :class:`TrainConfig` of ``options``; ``options`` also override ``cfg``).

    Returns the run's ``result.json`` as a dict (for an ensemble, the ensemble's
    summary with one entry per member).  With ``resume=True`` the run folder
    ``cfg.run.out`` continues from its latest checkpoint.
    """
    if cfg is None:
        cfg = TrainConfig(**options)
    elif options:
        cfg = cfg.replace(**options)
    if cfg.engine != "torch":  # the from-scratch engine (issue 5)
        if callbacks:
            raise ConfigError(f"callbacks run in the torch engine, not --engine {cfg.engine}")
        from deeper.runtime import precision_notice
        from deeper.scratch.trainer import fit_scratch

        if cfg.engine == "numpy":
            precision_notice(cfg.speed.dtype or "float32", "cpu", what="training", engine="numpy")
        return fit_scratch(cfg, resume=resume, log=log)
    if cfg.ensemble.members > 1:
        from deeper.train.ensemble import train_ensemble

        return train_ensemble(cfg, resume=resume, log=log)
    if cfg.speed.nproc > 1:
        if callbacks:
            raise ConfigError("callbacks cannot travel to the --nproc worker processes")
        from deeper.train.launch import launch

        return launch(cfg, resume=resume)
    from deeper.train.engine import run_engine

    return run_engine(cfg, resume=resume, callbacks=callbacks, log=log)
