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
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import save as st_save

from deeper.errors import CheckpointError
from deeper.fileio import NEW_FILE_MODE, bytes_digest, file_digest, write_text_atomic

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
    weights = st_save({k: v.detach().to("cpu").contiguous().clone() for k, v in model_state.items()})
    buf = io.BytesIO()
    torch.save(
        {**state, "format": FORMAT, "step": step, "model_sha256": bytes_digest(weights, "sha256")}, buf
    )
    try:
        tmp.mkdir()
        for name, data in (("model.safetensors", weights), ("state.pt", buf.getvalue())):
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                os.chmod(tmp / name, NEW_FILE_MODE)
        os.replace(tmp, final)
    except OSError as e:  # a full disk, a read-only folder: nothing half-written is left, the folder is named
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"could not write checkpoint step {step} into {root}: {e.strerror or e}"
        ) from None
    _fsync_dir(root)
    write_text_atomic(root / "latest", final.name + "\n")
    old = sorted(p for p in root.glob("step-*") if p.is_dir() and p != final)
    for p in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return final


_STEP_NAME = re.compile(r"step-\d{8,}(-\d+)?")


def latest_checkpoint(run_dir: str | os.PathLike) -> Path:
    """The checkpoint ``checkpoints/latest`` names: a ``step-N`` folder beside it, never a path elsewhere."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / "latest"
    if not pointer.is_file():
        raise CheckpointError(f"{run_dir}: no checkpoint to resume from (missing {pointer})")
    try:
        name = pointer.read_text(errors="strict").strip()
    except (OSError, UnicodeDecodeError):
        raise CheckpointError(f"{pointer}: unreadable") from None
    if not _STEP_NAME.fullmatch(name):
        raise CheckpointError(
            f"{pointer} names {name[:80]!r}, not a checkpoint folder beside it; refusing it"
        )
    path = root / name
    if not path.is_dir() or path.is_symlink() or path.resolve().parent != root.resolve():
        raise CheckpointError(f"{pointer} points at {name}, which is not a checkpoint folder of {run_dir}")
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
        first = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), "")
        why = f" ({first.removeprefix('WeightsUnpickler error: ')})" if first else ""
        raise CheckpointError(f"{state_file}: refused to load: not a plain-data checkpoint{why}") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{state_file}: unreadable ({e})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{state_file}: not a deeper checkpoint (format {state.get('format')!r})")
    if file_digest(weights, "sha256") != state.get("model_sha256"):
        raise CheckpointError(f"{weights}: checksum does not match the one recorded in state.pt")
    return load_file(weights), state
