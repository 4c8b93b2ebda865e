"""Resumable checkpoints: weights in safetensors, the rest in a ``weights_only`` file.

A checkpoint is a folder ``checkpoints/step-<N>/`` holding ``model.safetensors``
and ``state.pt`` (optimizer, schedule, RNG, loop position, history, config; only
tensors and plain Python values, so ``torch.load(weights_only=True)`` reads it).
The folder is written under a temporary name and renamed when complete, then the
pointer file ``checkpoints/latest`` is replaced atomically: a crash at any moment
leaves the previous checkpoint intact and pointed to.  ``state.pt`` records the
SHA-256 of ``model.safetensors``, so a truncated or altered pair is refused.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
from pathlib import Path

import torch
from safetensors.torch import save as st_save

from deeper.errors import CheckpointError
from deeper.fileio import bytes_digest, file_digest, write_text_atomic

FORMAT = 1
KEEP = 2


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(
    run_dir: str | os.PathLike, step: int, model_state: dict, state: dict, *, keep: int = KEEP
) -> Path:
    """Write checkpoint ``step`` of a run and point ``latest`` at it."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    n = 0
    while final.exists():  # never touch a complete checkpoint, even one of the same step
        n += 1
        final = root / f"step-{step:08d}-{n}"
    for stale in root.glob(".step-*.partial-*"):  # left by a crash during an earlier save
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".{final.name}.partial-{os.getpid()}"
    tmp.mkdir()
    weights = st_save({k: v.detach().to("cpu").contiguous().clone() for k, v in model_state.items()})
    (tmp / "model.safetensors").write_bytes(weights)
    buf = io.BytesIO()
    torch.save(
        {**state, "format": FORMAT, "step": step, "model_sha256": bytes_digest(weights, "sha256")}, buf
    )
    (tmp / "state.pt").write_bytes(buf.getvalue())
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(root)
    write_text_atomic(root / "latest", final.name + "\n")
    old = sorted(p for p in root.glob("step-*") if p.is_dir() and p != final)
    for p in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | os.PathLike) -> Path:
    root = Path(run_dir) / "checkpoints"
    pointer = root / "latest"
    if not pointer.is_file():
        raise CheckpointError(f"{run_dir}: no checkpoint to resume from (missing {pointer})")
    path = root / pointer.read_text().strip()
    if not path.is_dir():
        raise CheckpointError(f"{pointer} points at {path.name}, which does not exist")
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """``(model_state, state)`` of a checkpoint folder, verified and loaded without unpickling code."""
    from safetensors.torch import load_file

    path = Path(path)
    weights, state_file = path / "model.safetensors", path / "state.pt"
    for f in (weights, state_file):
        if not f.is_file():
            raise CheckpointError(f"{path}: incomplete checkpoint (missing {f.name})")
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{state_file}: refused to load (not a plain-data checkpoint): {e}") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{state_file}: unreadable ({e})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{state_file}: not a deeper checkpoint (format {state.get('format')!r})")
    if file_digest(weights, "sha256") != state.get("model_sha256"):
        raise CheckpointError(f"{weights}: checksum does not match the one recorded in state.pt")
    return load_file(weights), state
