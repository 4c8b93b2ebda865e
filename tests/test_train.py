import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from deeper.data import BatchLoader, ImageDataset
from deeper.errors import ConfigError, DivergedError
from deeper.tasks.classify import ClassificationTask
from deeper.train import (
    Callback,
    Interrupted,
    LoopState,
    TrainConfig,
    create_optimizer,
    fit,
    train_one_epoch,
)

TINY = dict(data="digits", tensorboard=False, progress=False)


# ----------------------------------------------------------------- optimizers


def one_step(name, grad, lr=0.1, **opts):
    w = nn.Parameter(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    opt = create_optimizer(name, [w], lr=lr, **opts)
    w.grad = grad.clone()
    opt.step()
    return w.detach(), opt


def test_sgd_step_is_w_minus_lr_grad():
    g = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    w, _ = one_step("sgd", g)
    assert torch.allclose(w, torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64) - 0.1 * g)


def test_momentum_accumulates_velocity():
    g = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    w = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = create_optimizer("momentum", [w], lr=0.1, momentum=0.9)
    for _ in range(2):
        w.grad = g.clone()
        opt.step()
    # v1 = g, v2 = 0.9 g + g; w = -lr (v1 + v2) = -0.1 * 2.9
    assert torch.allclose(w.detach(), torch.full((3,), -0.29, dtype=torch.float64))


def test_adam_first_step_matches_the_formula():
    g = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    w, _ = one_step("adam", g, lr=0.01, eps=1e-8)
    m_hat, v_hat = g, g * g  # bias-corrected first and second moments after one step
    expected = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64) - 0.01 * m_hat / (v_hat.sqrt() + 1e-8)
    assert torch.allclose(w, expected)


def test_optimizer_errors_are_helpful():
    p = [nn.Parameter(torch.zeros(1))]
    with pytest.raises(ConfigError, match="did you mean adam"):
        create_optimizer("adma", p)
    with pytest.raises(ConfigError, match="its options: momentum"):
        create_optimizer("momentum", p, beta1=0.9)
    with pytest.raises(ConfigError, match="positive"):
        create_optimizer("sgd", p, lr=0)


# ----------------------------------------------------------------- task and loop


def test_classification_task_sums_and_soft_labels():
    task = ClassificationTask()
    model = nn.Identity()
    logits = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0]])
    out = task.loss({"net": model}, (logits, torch.tensor([0, 1, 1])))
    assert out.count == 3 and int(out.sums["correct"]) == 2
    assert float(out.sums["loss"]) == pytest.approx(3 * float(out.loss))
    soft = task.loss({"net": model}, (logits, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.2, 0.8]])))
    assert int(soft.sums["correct"]) == 2
    assert task.summarize({"loss": 3.0, "correct": 2.0}, 4) == {"loss": 0.75, "accuracy": 0.5}


class NaNAfter(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.lin = nn.Linear(4, 2)
        self.calls, self.n = 0, n

    def forward(self, x):
        self.calls += 1
        y = self.lin(x.flatten(1))
        return y * float("nan") if self.calls >= self.n else y


def test_nan_loss_stops_the_run_naming_the_step():
    ds = ImageDataset(
        "t", torch.zeros(40, 1, 2, 2, dtype=torch.uint8), torch.zeros(40, dtype=torch.long), ("a", "b")
    )
    model = NaNAfter(3)
    opt = create_optimizer("sgd", model.parameters())
    state = LoopState(global_step=100)
    with pytest.raises(DivergedError, match=r"step 103 \(epoch 1, batch 3\)"):
        train_one_epoch(model, ClassificationTask(), BatchLoader(ds, 10), opt, state=state)
    assert state.global_step == 102  # the bad step was not applied


def test_diverging_run_via_fit_is_reported(tmp_path):
    with pytest.raises(DivergedError, match="at step"):
        fit(TrainConfig(**TINY, optimizer="sgd", lr=1e6, epochs=1, out=str(tmp_path / "r")))


@pytest.mark.slow
def test_a_short_training_run_learns(tmp_path):
    result = fit(TrainConfig(**TINY, epochs=3, out=str(tmp_path / "r")))
    assert result["test_accuracy"] > 0.6  # chance is 0.1
    run = tmp_path / "r"
    for name in ("config.yaml", "metrics.csv", "curves.png", "model.safetensors", "result.json"):
        assert (run / name).is_file(), name
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step,train_loss,train_accuracy,val_loss,val_accuracy") and len(rows) == 4
    assert json.loads((run / "result.json").read_text())["test_accuracy"] == result["test_accuracy"]


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    def weights(seed, name):
        fit(TrainConfig(**TINY, epochs=1, max_steps=4, seed=seed, out=str(tmp_path / name)))
        return load_file(tmp_path / name / "model.safetensors")

    a, b, c = weights(1, "a"), weights(1, "b"), weights(2, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "deeper", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_resume_in_a_new_process_continues_bit_for_bit(tmp_path):
    """N steps + checkpoint + new process + resume + N steps == 2N steps straight (across an epoch end)."""
    common = ["train", "--data", "digits", "--epochs", "2", "--no-tensorboard", "--no-progress"]
    straight = cli(*common, "--max-steps", "16", "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    first = cli(*common, "--max-steps", "8", "--out", str(tmp_path / "split"))
    assert first.returncode == 0, first.stderr
    resumed = cli("train", "--resume", str(tmp_path / "split"), "--max-steps", "16", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "straight" / "metrics.csv").read_text().splitlines()[1].split(",")[:6] == (
        tmp_path / "split" / "metrics.csv"
    ).read_text().splitlines()[1].split(",")[:6]


def test_interrupt_saves_a_checkpoint_that_resumes(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = ClassificationTask.loss

    def flaky(self, nets, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, nets, batch)

    monkeypatch.setattr(ClassificationTask, "loss", flaky)
    out = tmp_path / "r"
    with pytest.raises(Interrupted, match="step 3.*--resume"):
        fit(TrainConfig(**TINY, epochs=1, out=str(out)))
    assert (out / "checkpoints" / "step-00000003").is_dir()
    monkeypatch.setattr(ClassificationTask, "loss", real)
    result = fit(TrainConfig(**TINY, epochs=1, out=str(out)), resume=True)
    assert result["steps"] == 11


def test_existing_run_folder_is_not_overwritten(tmp_path):
    fit(TrainConfig(**TINY, epochs=1, max_steps=1, out=str(tmp_path / "r")))
    with pytest.raises(ConfigError, match="already holds a run"):
        fit(TrainConfig(**TINY, epochs=1, max_steps=1, out=str(tmp_path / "r")))


def test_config_validation():
    with pytest.raises(ConfigError, match="unknown recipe"):
        TrainConfig(recipe="slow").resolved()
    with pytest.raises(ConfigError, match="--batch-size"):
        TrainConfig(batch_size=0).resolved()
    cfg = TrainConfig(recipe="book", lr=0.01).resolved()
    assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.batch_size, cfg.optim.epochs) == (
        "adam",
        0.01,
        100,
        20,
    )


class CountingStop(Callback):
    name = "counting"

    def __init__(self, stop_after_epoch=None):
        self.steps, self.stop_after_epoch = 0, stop_after_epoch

    def on_step_end(self, run, state):
        self.steps += 1

    def on_epoch_end(self, run, state, row):
        row["counted_steps"] = self.steps
        if self.stop_after_epoch is not None and row["epoch"] >= self.stop_after_epoch:
            return "enough"
        return None

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state.get("steps", 0)


def test_callbacks_add_metrics_stop_the_run_and_survive_a_resume(tmp_path):
    cb = CountingStop(stop_after_epoch=2)
    result = fit(TrainConfig(**TINY, epochs=5, out=str(tmp_path / "a")), callbacks=[cb])
    assert result["stopped"] == "enough" and result["epochs"] == 2
    assert "counted_steps" in (tmp_path / "a" / "metrics.csv").read_text().splitlines()[0]
    fit(TrainConfig(**TINY, epochs=2, max_steps=5, out=str(tmp_path / "b")), callbacks=[CountingStop()])
    resumed = CountingStop()
    fit(TrainConfig(**TINY, epochs=2, out=str(tmp_path / "b")), resume=True, callbacks=[resumed])
    assert resumed.steps == cb.steps == 22  # 5 before the checkpoint, 17 after it


def test_time_limit_counts_training_steps_not_evaluation_and_keeps_a_resumed_runs_time(monkeypatch):
    from deeper.train import callbacks as cbs
    from deeper.train.loop import LoopState

    clock = [100.0]
    monkeypatch.setattr(cbs.time, "perf_counter", lambda: clock[0])
    limit, state = cbs.TimeLimit(60), LoopState(train_seconds=50.0)  # 50 s trained before a resume
    limit.on_fit_start(None, state)
    clock[0] += 9
    assert limit.on_step_end(None, state) is None  # 59 s
    state.train_seconds += 9  # the loop closes the epoch: 59 s
    clock[0] += 300  # a long evaluation
    assert limit.on_epoch_end(None, state, {}) is None
    clock[0] += 0.5
    assert limit.on_step_end(None, state) is None  # 59.5 s: the evaluation did not count
    clock[0] += 1
    assert limit.on_step_end(None, state) == "time limit 1 min"
    with pytest.raises(ValueError, match="positive"):
        cbs.TimeLimit(0)
    # steady steps of 0.4 s (after a slow first one): the run stops when one more would pass the limit
    limit, state = cbs.TimeLimit(10), LoopState()
    clock[0] = 0.0
    limit.on_fit_start(None, state)
    clock[0] += 3.0  # the first step warms up: not a measure of the others
    assert limit.on_step_end(None, state) is None
    ends = []
    for _ in range(30):
        clock[0] += 0.4
        if limit.on_step_end(None, state):
            ends.append(clock[0])
            break
    assert ends and 9.6 - 1e-9 < ends[0] <= 10.0  # within the limit, and not a whole step short of it
