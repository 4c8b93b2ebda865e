"""Data-parallel training on ``torch.distributed`` (DDP), launched with torchrun.

A process started by torchrun finds ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and
the rendezvous address in its environment; :func:`init_distributed` joins the
process group from them (gloo on the CPU, NCCL on GPUs).  The training run then

- shards every epoch across ranks (``BatchLoader(rank=, world_size=)``, the
  in-memory equivalent of ``DistributedSampler``), with ``--batch-size`` the
  *global* batch, so the number of steps and the schedule match one process;
- wraps the model in :class:`~torch.nn.parallel.DistributedDataParallel`, which
  averages the gradients (all-reduce) in every backward pass;
- sums the training metrics over ranks (:func:`all_reduce_sums`) before they are
  reported; evaluation runs on every (identical) replica, so every rank takes
  the same early-stopping decisions;
- logs, checkpoints and writes files on rank 0 only.

``deeper train --nproc N`` (:func:`deeper.train.launch.launch`) re-launches
itself under ``torch.distributed.run`` (torchrun); with ``--max-restarts R``
torchrun restarts all workers after a failure and they resume from the last
checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from deeper.errors import ConfigError
from deeper.runtime import resolve_device


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the process group."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_world_size() -> int:
    """``WORLD_SIZE`` set by torchrun (1 when not launched by it)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from None


def init_distributed(device_spec: str = "auto") -> DistEnv | None:
    """Join the process group torchrun describes in the environment; ``None`` for a single process.

    Idempotent: a second call returns the same description.  The device of a
    rank is ``cuda:LOCAL_RANK`` when CUDA is requested (or ``auto`` finds it),
    else the CPU.
    """
    world = launched_world_size()
    if world <= 1 and not dist.is_initialized():
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # The rendezvous store outlives a torchrun restart: keys under a per-attempt prefix, so
        # a restarted rank never reads the address a killed process published.
        store, rank, size = next(dist.rendezvous("env://"))
        store = dist.PrefixStore(f"deeper/attempt-{restart_count()}", store)
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo", store=store, rank=rank, world_size=size
        )
    return DistEnv(dist.get_rank(), dist.get_world_size(), local_rank, device)


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def broadcast_object(obj):
    """``obj`` as rank 0 has it (unchanged when not distributed)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sums(sums: dict[str, float], count: int) -> tuple[dict[str, float], int]:
    """Metric sums and example count added up over all ranks (float64; unchanged when not distributed)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return dict(sums), count
    keys = sorted(sums)
    t = torch.tensor([sums[k] for k in keys] + [float(count)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    values = t.cpu().tolist()
    return dict(zip(keys, values[:-1])), int(round(values[-1]))


def wrap_ddp(model: nn.Module, env: DistEnv, *, static_graph: bool = True) -> nn.Module:
    """``model`` in a DDP wrapper (parameters broadcast from rank 0; gradients averaged every backward).

    Gradients are views into DDP's buckets (no copy in and out of them) and, for
    tasks of one forward and one backward per step, the graph is declared static
    (the same parameters take part in every step), on every device.  On CPUs every gradient goes into one bucket: DDP normally
    starts all-reducing early buckets while backward still runs, but with one
    thread per rank on a core of its own nothing is left to overlap with, and
    each extra gloo all-reduce costs time.  Measured on the 2-core machine
    (``benchmarks/ddp_scaling.py``, 2 ranks vs 1): 1.50x with DDP's defaults, 1.67x
    with bucket views and a static graph, 1.76x with one bucket as well.
    """
    from torch.nn.parallel import DistributedDataParallel as DDP

    if env.device.type == "cuda":
        return DDP(
            model, device_ids=[env.device.index], gradient_as_bucket_view=True, static_graph=static_graph
        )
    megabytes = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    return DDP(
        model, gradient_as_bucket_view=True, static_graph=static_graph, bucket_cap_mb=max(25.0, 2 * megabytes)
    )


def per_rank_batch(global_batch: int, world: int) -> int:
    if global_batch % world:
        raise ConfigError(
            f"--batch-size {global_batch} (the global batch) must be divisible by the {world} processes"
        )
    return global_batch // world


def restart_count() -> int:
    """How often torchrun has restarted the workers (0 on the first attempt)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


class Silent:
    """Stands in for the run logger on ranks other than 0: every method does nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None
