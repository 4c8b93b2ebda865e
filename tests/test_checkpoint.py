import io
import os

import pytest
import torch

from deeper.errors import CheckpointError
from deeper.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


def model_state(v=1.0):
    return {"w": torch.full((3, 2), v), "b": torch.arange(2.0)}


def test_roundtrip_and_latest_pointer(tmp_path):
    state = {
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]},
        "loop": {"epoch": 2, "history": [{"a": 1.5}]},
        "rng": {"torch": torch.get_rng_state()},
    }
    save_checkpoint(tmp_path, 10, model_state(1.0), state)
    save_checkpoint(tmp_path, 20, model_state(2.0), state)
    path = latest_checkpoint(tmp_path)
    assert path.name == "step-00000020"
    weights, loaded = load_checkpoint(path)
    assert torch.equal(weights["w"], model_state(2.0)["w"])
    assert loaded["loop"] == state["loop"] and loaded["step"] == 20
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, model_state(step), {}, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest", "step-00000003", "step-00000004"]


def test_saving_the_same_step_twice_keeps_both_complete(tmp_path):
    save_checkpoint(tmp_path, 5, model_state(1.0), {})
    save_checkpoint(tmp_path, 5, model_state(2.0), {})
    weights, _ = load_checkpoint(latest_checkpoint(tmp_path))
    assert float(weights["w"][0, 0]) == 2.0


def test_a_crash_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 1, model_state(1.0), {"loop": {"epoch": 1}})

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(CheckpointError, match=f"into {tmp_path / 'checkpoints'}: No space left on device"):
        save_checkpoint(tmp_path, 2, model_state(2.0), {"loop": {"epoch": 2}})
    monkeypatch.undo()
    assert not list((tmp_path / "checkpoints").glob(".*partial*"))  # the half-written folder is gone
    weights, state = load_checkpoint(latest_checkpoint(tmp_path))
    assert float(weights["w"][0, 0]) == 1.0 and state["loop"] == {"epoch": 1}
    save_checkpoint(tmp_path, 3, model_state(3.0), {})  # the next save clears the debris
    assert not list((tmp_path / "checkpoints").glob(".*partial*"))


def test_altered_or_truncated_weights_fail_the_checksum(tmp_path):
    path = save_checkpoint(tmp_path, 1, model_state(), {})
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[:-4] + b"\0\0\0\1")
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)


class Payload:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_state_with_non_allowlisted_objects_is_refused(tmp_path):
    path = save_checkpoint(tmp_path, 1, model_state(), {})
    buf = io.BytesIO()
    torch.save({"format": 1, "evil": Payload()}, buf)
    (path / "state.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)


def test_missing_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        latest_checkpoint(tmp_path)
    path = save_checkpoint(tmp_path, 1, model_state(), {})
    (path / "state.pt").unlink()
    with pytest.raises(CheckpointError, match="missing state.pt"):
        load_checkpoint(path)
