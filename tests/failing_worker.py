"""A torchrun worker that kills itself once, for the fault-tolerance test: ``DEEPER_INJECT_FAILURE=RANK:STEP``.

``launch(cfg, worker="tests.failing_worker")`` runs it instead of deeper's own
worker; on the first attempt the process of rank RANK exits abruptly after step
STEP, torchrun restarts every worker and they resume from the last checkpoint.
"""

from __future__ import annotations

import os
import sys

import torch.distributed as dist

from deeper.train import Callback
from deeper.train.distributed import restart_count
from deeper.train.launch import worker_main

FAIL_ENV = "DEEPER_INJECT_FAILURE"


class InjectedFailure(Callback):
    name = "injected-failure"

    def __init__(self, rank: int, step: int):
        self.rank, self.step = rank, step

    def on_step_end(self, run, state) -> None:
        me = dist.get_rank() if dist.is_initialized() else 0
        if restart_count() == 0 and me == self.rank and state.global_step == self.step:
            print(f"deeper: injected failure of rank {me} at step {self.step}", file=sys.stderr, flush=True)
            os._exit(17)


if __name__ == "__main__":
    rank, step = (int(v) for v in os.environ[FAIL_ENV].split(":"))
    raise SystemExit(worker_main(callbacks=[InjectedFailure(rank, step)]))
