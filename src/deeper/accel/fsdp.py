"""Model parallelism: parameters sharded across ranks with FSDP (``torch.distributed.fsdp.fully_shard``).

Each rank keeps only its slice of every parameter (and of the optimizer state):
before a layer runs, its full weights are all-gathered; after the backward,
its gradients are reduce-scattered so each rank updates its own slice.  The
memory per rank falls roughly as ``1 / world_size``, which is what lets a model
too big for one device train at all (the notes' "model parallelism").  Runs on
CPUs with gloo, so it is tested here without a GPU.

Use it from a torchrun worker (see :mod:`deeper.train.distributed`)::

    env = init_distributed("cpu")
    model = shard_model(create_model("deep-convnet"))
    opt = torch.optim.Adam(model.parameters())      # optimizer state is sharded too
    ...                                             # train on this rank's data shard
    state = full_state_dict(model)                  # every rank: full tensors, for saving on rank 0
"""

from __future__ import annotations

import torch
from torch import nn

SHARDED_LAYERS = (nn.Conv2d, nn.Linear)


def shard_model(model: nn.Module, *, layers: tuple[type, ...] = SHARDED_LAYERS) -> nn.Module:
    """Shard ``model`` in place: each conv/affine layer is its own FSDP unit, the rest the root's."""
    from torch.distributed.fsdp import fully_shard

    for m in model.modules():
        if isinstance(m, layers) and m is not model:
            fully_shard(m)
    fully_shard(model)
    return model


def local_numel(model: nn.Module) -> int:
    """Parameter elements this rank holds (its shards)."""
    return sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in model.parameters())


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded state dict (a collective: call it on every rank)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
