"""``deeper train --nproc N``: the run in N processes under torchrun, and the worker each process runs.

:func:`launch` writes the resolved configuration to a YAML file in the run
folder and starts ``torch.distributed.run`` with ``python -m
deeper.train.launch CONFIG.yaml [--resume]`` as the worker: :func:`worker_main`
joins the process group (:mod:`deeper.train.distributed`) and runs the engine.
With ``--max-restarts R`` torchrun restarts all workers after a failure; a
restarted worker (``TORCHELASTIC_RESTART_COUNT`` > 0) resumes from the run's
latest checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from deeper.errors import ConfigError, DeeperError
from deeper.runtime import notice
from deeper.train.config import TrainConfig
from deeper.train.distributed import launched_world_size, restart_count

WORKER = "deeper.train.launch"


def launch(cfg: TrainConfig, *, resume: bool = False, worker: str = WORKER) -> dict:
    """Run the engine on ``cfg`` in ``cfg.speed.nproc`` processes under torchrun; return rank 0's result.

    The run folder is fixed here (so restarted workers find their checkpoints).
    Each worker gets ``cores // nproc`` threads unless ``OMP_NUM_THREADS`` is set.
    ``worker`` is the module torchrun runs (``python -m WORKER CONFIG [--resume]``).
    """
    import yaml

    from deeper.train.run import default_run_dir

    cfg = cfg.resolved()
    if launched_world_size() > 1:
        raise ConfigError("--nproc given inside a torchrun worker; use one or the other")
    nproc, restarts = cfg.speed.nproc, cfg.speed.max_restarts
    run_dir = Path(cfg.run.out) if cfg.run.out else default_run_dir(cfg)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    run_dir.mkdir(parents=True, exist_ok=True)
    fd, cfg_path = tempfile.mkstemp(prefix=".launch-", suffix=".yaml", dir=run_dir)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(cfg.replace(out=str(run_dir), nproc=1).to_dict(), fh, sort_keys=False)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={nproc}", f"--max-restarts={restarts}",
        "-m", worker, cfg_path, *(["--resume"] if resume else []),
    ]  # fmt: skip
    notice(f"launching {nproc} processes with torchrun (max restarts {restarts}) -> {run_dir}")
    try:
        proc = subprocess.run(command, env=env, stdout=sys.stderr)
    finally:
        Path(cfg_path).unlink(missing_ok=True)
    result_file = run_dir / "result.json"
    if proc.returncode != 0:
        raise DeeperError(
            f"distributed training failed (torchrun exit code {proc.returncode}); "
            f"see the messages above; resume with: deeper train --resume {run_dir} --nproc {nproc}"
        )
    if not result_file.is_file():
        raise DeeperError(f"distributed training ended without writing {result_file}")
    result = json.loads(result_file.read_text())
    result["nproc"] = nproc
    return result


def worker_main(argv: list[str] | None = None, *, callbacks: list | None = None) -> int:
    """One torchrun worker: ``python -m deeper.train.launch CONFIG.yaml [--resume]``."""
    import torch.distributed as dist
    import yaml

    from deeper.train.engine import run_engine

    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg = TrainConfig.from_dict(yaml.safe_load(Path(argv[0]).read_text()))
        resume = "--resume" in argv[1:]
        if restart_count() > 0 and (Path(cfg.run.out) / "checkpoints" / "latest").is_file():
            resume = True
        run_engine(cfg, resume=resume, callbacks=callbacks)
    except DeeperError as e:
        print(f"deeper train: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(worker_main())
