"""The task contract: every registered task trains a few steps through the one engine, checkpoints,
resumes in a new process and ends bit for bit where an uninterrupted run ends; the pieces tasks are
made of (parts, steppers, sources without a length, metrics that concatenate) do what they say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from deeper.errors import ConfigError
from deeper.models import create_model, save_weights
from deeper.tasks import Metric, StepOutput, Task, create_task, get_task_class, list_tasks
from deeper.tasks.toys import Chain, EnergyDistance, ReplaySource, ring_points
from deeper.train import LoopState, Parts, Stepper, TrainConfig, fit, train_one_epoch
from deeper.train.checkpoint import latest_checkpoint, load_checkpoint
from deeper.train.metrics import Meter

REPO = Path(__file__).resolve().parents[1]
QUIET = dict(tensorboard=False, progress=False, device="cpu")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> str:
    """An (untrained) digits classifier: enough for a teacher whose outputs must be followed bit for bit."""
    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("teacher") / "teacher.safetensors"
    save_weights(
        create_model("lenet5", num_classes=10, in_chans=1), path, {"model": "lenet5", "num_classes": 10}
    )
    return str(path)


def tiny(name: str, teacher: str) -> dict:
    """The task's own dry-run settings (a few steps on tiny data), with a teacher where one is needed."""
    settings = dict(get_task_class(name).dry_run)
    if not settings:
        pytest.fail(f"task {name!r} declares no dry_run settings (a few steps on tiny data)")
    if name == "distill":
        settings["task_args"] = {**settings.get("task_args", {}), "teacher": teacher}
    return {"task": name, **settings, **QUIET}


def _parts(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(latest_checkpoint(run_dir))[0]


def _rows(run_dir: Path) -> list[list[str]]:
    lines = (run_dir / "metrics.csv").read_text().strip().splitlines()
    header = lines[0].split(",")
    keep = [i for i, h in enumerate(header) if h not in ("epoch_seconds", "img_per_s")]
    return [[row.split(",")[i] for i in keep] for row in lines]


@pytest.mark.slow
@pytest.mark.parametrize("name", list_tasks())
def test_every_task_resumes_in_a_new_process_bit_for_bit(name, teacher, tmp_path):
    options = tiny(name, teacher)
    straight = fit(TrainConfig(**options, out=str(tmp_path / "straight")))
    steps = straight["steps"]
    assert steps >= 4 and straight["epochs"] >= 2
    stop = steps // 2 + 1  # inside an epoch after the first
    first = fit(TrainConfig(**options, max_steps=stop, out=str(tmp_path / "split")))
    assert first["steps"] == stop and first["stopped"] == f"max-steps {stop}"
    cmd = [
        sys.executable,
        "-m",
        "deeper",
        "train",
        "--resume",
        str(tmp_path / "split"),
        "--max-steps",
        "1000",
        "--json",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    resumed = json.loads(p.stdout.strip().splitlines()[-1])
    assert resumed["steps"] == steps and resumed["task"] == name
    a, b = _parts(tmp_path / "straight"), _parts(tmp_path / "split")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert _rows(tmp_path / "straight") == _rows(tmp_path / "split")
    primary = straight["primary_metric"]
    assert resumed[f"test_{primary}"] == straight[f"test_{primary}"]


def test_every_task_declares_a_primary_metric_with_a_direction_and_an_exported_part():
    for name in list_tasks():
        cls = get_task_class(name)
        assert cls.primary in [m.name for m in cls.metrics]
        assert cls.export and cls.description
        task = create_task(name)
        assert task.higher_is_better(f"val_{cls.primary}") == task.metric(cls.primary).higher_is_better


def test_task_options_are_checked():
    assert create_task("gan-2d", {"modes": 3}).args["modes"] == 3
    assert create_task("distill", {"alpha": 1}).args["alpha"] == 1.0  # an int where a float is due
    for args, message in [
        ({"mode": 3}, "does not take option.*mode.*its options"),
        ({"modes": "x"}, "must be an integer"),
        ({"modes": 0}, r"must be in \[1, 64\]"),
        ({"modes": True}, "must be an integer"),
    ]:
        with pytest.raises(ConfigError, match=message):
            create_task("gan-2d", args)
    with pytest.raises(ConfigError, match="unknown task 'clasify'; did you mean classify"):
        create_task("clasify")


def test_a_task_refuses_models_and_data_of_another_kind(tmp_path):
    with pytest.raises(ConfigError, match="holds scenes; task 'classify' trains on images"):
        fit(TrainConfig(data="scenes-det", out=str(tmp_path / "a"), **QUIET))


def test_classification_options_another_task_would_ignore_are_refused_by_the_engine(tmp_path):
    for task, options, message in [
        ("gan-2d", {"mixup": 0.2}, "task 'gan-2d' does not take --mixup"),
        ("chain-dqn", {"augment": "default", "bootstrap": True}, "does not take --augment, --bootstrap"),
        (
            "segment",
            {"model": "unet", "data": "scenes-seg", "init_from": str(tmp_path / "w")},
            "not take --init-from",
        ),
    ]:
        with pytest.raises(ConfigError, match=message):
            fit(TrainConfig(task=task, **options, out=str(tmp_path / task), **QUIET))
        assert not (tmp_path / task).exists()


def test_cuda_graphs_need_a_task_of_one_automatic_step(tmp_path):
    with pytest.raises(ConfigError, match="--cuda-graphs replays one forward"):
        fit(TrainConfig(task="gan-2d", cuda_graphs=True, out=str(tmp_path / "g"), **QUIET))


# ----------------------------------------------------------------------------- two optimizers taking turns


class Recording(Stepper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order: list[str] = []

    def update(self, name, loss, state, **kw):
        self.order.append(name)
        super().update(name, loss, state, **kw)


def test_a_gan_step_updates_the_discriminator_then_the_generator():
    from deeper.tasks.toys import mlp

    task = create_task("gan-2d", {"latent": 4})
    torch.manual_seed(0)
    g, d = mlp([4, 8, 2]), mlp([2, 8, 1])
    opts = {"D": torch.optim.SGD(d.parameters(), lr=0.1), "G": torch.optim.SGD(g.parameters(), lr=0.1)}
    stepper = Recording(opts)
    before = {n: [p.detach().clone() for p in m.parameters()] for n, m in (("G", g), ("D", d))}
    out = task.training_step({"G": g, "D": d}, ring_points(16, modes=4), stepper, LoopState())
    assert stepper.order == ["D", "G"]
    for n, m in (("G", g), ("D", d)):
        assert any(not torch.equal(a, b) for a, b in zip(before[n], m.parameters())), n
    assert set(out.sums) == {"loss_d", "loss_g"} and out.count == 16


def test_a_task_with_several_optimizers_cannot_use_the_automatic_step():
    stepper = Stepper(
        {
            "D": torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1),
            "G": torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1),
        }
    )
    with pytest.raises(ConfigError, match="update\\(name, loss\\)"):
        stepper.step(create_task("classify"), {}, None, LoopState())


def test_each_optimizer_has_its_own_schedule_and_a_nan_names_the_optimizer():
    a, b = nn.Parameter(torch.ones(1)), nn.Parameter(torch.ones(1))
    oa, ob = torch.optim.SGD([a], lr=1.0), torch.optim.SGD([b], lr=1.0)
    sa = torch.optim.lr_scheduler.LambdaLR(oa, lambda s: 0.5**s)
    stepper = Stepper({"A": oa, "B": ob}, {"A": sa})
    state = LoopState()
    stepper.update("A", (a * 2).sum(), state)
    stepper.update("B", (b * 2).sum(), state)
    assert oa.param_groups[0]["lr"] == 0.5 and ob.param_groups[0]["lr"] == 1.0
    assert float(a.detach()) == -1.0 and float(b.detach()) == -1.0
    with pytest.raises(Exception, match=r"loss \(B\) became nan at step 1"):
        stepper.update("B", b.sum() * float("nan"), state)


# ----------------------------------------------------------------------------- a source with no length


def test_an_environment_source_has_no_length_and_the_loop_takes_its_steps_per_epoch():
    q = nn.Linear(5, 2)
    source = ReplaySource(
        q, Chain(5, 20), steps=7, batch=4, capacity=10, seed=0, eps=(1.0, 0.1, 10), device="cpu"
    )
    assert not hasattr(source, "__len__")
    task = create_task("chain-dqn", {"states": 5, "sync": 2})
    target = nn.Linear(5, 2).requires_grad_(False)
    state = LoopState()
    stepper = Stepper({"q": torch.optim.SGD(q.parameters(), lr=0.1)})
    train_one_epoch({"q": q, "target": target}, task, source, stepper=stepper, state=state)
    assert state.global_step == 7 and source.size == 7 and source.acted == 7
    # the target was copied from the online network at step 6 (a multiple of sync=2) and not trained since
    assert not torch.equal(target.weight, q.weight)


def test_the_environment_source_state_restores_acting_and_sampling_exactly():
    def fresh():
        torch.manual_seed(0)
        return ReplaySource(nn.Linear(5, 2), Chain(5, 20), steps=10, batch=3, capacity=6, seed=1,
                            eps=(0.5, 0.5, 1), device="cpu")  # fmt: skip

    a = fresh()
    it = iter(a)
    for _ in range(8):  # past the buffer's capacity: the ring wraps
        next(it)
    b = fresh()
    b.load_state_dict(a.state_dict())
    for x, y in zip(iter(a), iter(b)):
        assert all(torch.equal(x[k], y[k]) for k in x)
        if a.acted > 14:
            break
    assert (a.env.pos, a.env.t, a.pos) == (b.env.pos, b.env.t, b.pos)


def test_greedy_q_learning_solves_the_corridor(tmp_path):
    r = fit(
        TrainConfig(task="chain-dqn", epochs=3, batch_size=32, lr=0.003, out=str(tmp_path / "q"), **QUIET)
    )
    assert r["test_return"] == 1.0 and r["steps"] == 600


@pytest.mark.slow
def test_the_gan_learns_the_ring(tmp_path):
    r = fit(TrainConfig(task="gan-2d", epochs=20, lr=0.001, schedule="constant", batch_size=64,
                        out=str(tmp_path / "g"), **QUIET))  # fmt: skip
    lines = (tmp_path / "g" / "metrics.csv").read_text().splitlines()
    col = lines[0].split(",").index("val_energy")
    energies = [float(row.split(",")[col]) for row in lines[1:]]
    assert r["test_energy"] < 0.1 and energies[-1] < energies[0] / 3  # the generator's points find the ring


# ----------------------------------------------------------------------------- metrics


class Counting(Task):
    name = "counting-test"
    metrics = (Metric("loss", higher_is_better=False), Metric("energy", higher_is_better=False))


def test_a_meter_adds_sums_and_concatenates_what_must_see_every_sample():
    torch.manual_seed(0)
    fake, real = torch.randn(30, 2), torch.randn(30, 2) + 1
    meter = Meter(Counting(), {"energy": EnergyDistance()})
    for i in range(0, 30, 7):
        n = len(fake[i : i + 7])
        meter.add(
            StepOutput(
                None, {"loss": torch.tensor(2.0 * n)}, n, preds=fake[i : i + 7], target=real[i : i + 7]
            )
        )
    whole = EnergyDistance()
    whole.update(fake, real)
    out = meter.compute()
    assert out["loss"] == 2.0 and out["energy"] == pytest.approx(float(whole.compute()))
    assert out["energy"] > 0.5


def test_classification_reports_top5_and_the_test_confusion_matrix(tmp_path):
    r = fit(
        TrainConfig(data="digits", model="lenet5", epochs=1, subset=200, out=str(tmp_path / "c"), **QUIET)
    )
    matrix = r["test"]["confusion_matrix"]
    assert len(matrix) == 10 and sum(map(sum, matrix)) == 360
    correct = sum(matrix[i][i] for i in range(10))
    assert correct / 360 == pytest.approx(r["test_accuracy"])
    assert r["test_accuracy"] <= r["test_top5"] <= 1.0
    header = (tmp_path / "c" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "val_top5" in header and not any("confusion" in h for h in header)


def test_parts_checkpoint_every_module_under_its_name():
    a, b = nn.Linear(2, 2), nn.Linear(2, 1)
    parts = Parts({"G": a, "D": b}, {"G": torch.optim.SGD(a.parameters(), lr=1)}, export="G")
    state = parts.module_state()
    assert set(state) == {"G.weight", "G.bias", "D.weight", "D.bias"}
    other = Parts(
        {"G": nn.Linear(2, 2), "D": nn.Linear(2, 1)}, {"G": torch.optim.SGD(a.parameters(), lr=1)}, export="G"
    )
    other.load_module_state(state, "x")
    assert torch.equal(other.modules["D"].weight, b.weight)
    with pytest.raises(ConfigError, match="exported part 'net'"):
        Parts({"G": a})


# ----------------------------------------------------------------------------- batches of variable-size targets


class CountDigits(Task):
    """Regress how many digits a scene holds (a test task: its targets are lists of per-scene dicts)."""

    name = "count-digits-test"
    metrics = (Metric("loss", higher_is_better=False), Metric("exact"))
    primary = "exact"

    def loss(self, nets, batch):
        x, targets = batch
        n = torch.tensor([float(len(t["labels"])) for t in targets])
        pred = nets["net"](x).squeeze(1)
        loss = torch.nn.functional.mse_loss(pred, n)
        return StepOutput(loss, {"loss": loss.detach() * len(x), "exact": (pred.round() == n).sum()}, len(x))

    evaluation_step = loss


def test_scene_batches_carry_one_target_dict_per_scene_through_the_loop():
    from deeper.data import ImageDataset
    from deeper.data.scenes import SceneLoader, generate_scenes
    from deeper.train import evaluate

    g = torch.Generator().manual_seed(0)
    digits = ImageDataset(
        "fake", (torch.rand(200, 1, 28, 28, generator=g) > 0.7).to(torch.uint8) * 255,
        torch.randint(0, 10, (200,), generator=g), tuple("0123456789"),
    )  # fmt: skip
    scenes = generate_scenes("scenes-det", digits, "train", n=48)
    loader = SceneLoader(scenes, 16, shuffle=True, seed=0, masks=True)
    x, targets = next(iter(loader))
    assert x.shape == (16, 1, 128, 128) and len(targets) == 16
    sizes = {len(t["labels"]) for t in targets}
    assert len(sizes) > 1  # scenes hold different numbers of digits
    assert all(
        t["boxes"].shape == (len(t["labels"]), 4) and t["masks"].shape[0] == len(t["labels"]) for t in targets
    )
    torch.manual_seed(0)
    net = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(16, 1))
    state = LoopState()
    train_one_epoch(net, CountDigits(), loader, torch.optim.SGD(net.parameters(), lr=0.01), state=state)
    assert state.global_step == 3 and state.train_samples == 48
    assert 0 <= evaluate(net, CountDigits(), SceneLoader(scenes, 48))["exact"] <= 1


@pytest.mark.parametrize("name", ["classify", "gan-2d", "chain-dqn"])
def test_dry_run_trains_a_few_steps_on_tiny_data_in_a_fresh_folder(name, capsys, tmp_path, monkeypatch):
    import tempfile

    from deeper.cli import main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["train", "--task", name, "--dry-run", "--epochs", "50", "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["task"] == name and r["epochs"] == get_task_class(name).dry_run["epochs"] and r["steps"] <= 12
    assert Path(r["run_dir"]).parent == tmp_path and Path(r["run_dir"]).name.startswith("deeper-dry-run-")
