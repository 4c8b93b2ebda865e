"""One torchrun worker of ``deeper train --nproc N``: ``python -m deeper.accel.worker CONFIG.yaml [--resume]``.

A restarted worker (``TORCHELASTIC_RESTART_COUNT`` > 0) resumes from the run's
latest checkpoint when there is one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch.distributed as dist
import yaml


def main(argv: list[str] | None = None) -> int:
    from deeper.accel.distributed import restart_count
    from deeper.errors import DeeperError
    from deeper.train import TrainConfig, fit

    argv = sys.argv[1:] if argv is None else argv
    cfg = TrainConfig.from_dict(yaml.safe_load(Path(argv[0]).read_text()))
    resume = "--resume" in argv[1:]
    if restart_count() > 0 and (Path(cfg.run.out) / "checkpoints" / "latest").is_file():
        resume = True
    try:
        fit(cfg, resume=resume)
    except DeeperError as e:
        print(f"deeper train: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
