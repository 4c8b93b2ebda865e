"""``--cuda-graphs``: option checks and the CPU fallback here; the captured step itself on a GPU (``-m gpu``)."""

from __future__ import annotations

import pytest
import torch

from deeper.errors import ConfigError, DivergedError
from deeper.train import TrainConfig, build_run, fit
from deeper.train.loop import LoopState, train_one_epoch
from deeper.train.stepper import Stepper

cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def cfg(tmp_path, name="run", **kw) -> TrainConfig:
    base = dict(
        data="digits", epochs=2, batch_size=64, tensorboard=False, progress=False,
        out=str(tmp_path / name), cuda_graphs=True,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def test_cpu_run_ignores_the_flag_with_a_notice(tmp_path, capsys, one_thread):
    run = build_run(cfg(tmp_path, device="cpu").resolved())
    assert type(run.stepper) is Stepper
    assert "--cuda-graphs ignored" in capsys.readouterr().err


def test_cuda_graphs_and_compile_are_exclusive(tmp_path):
    with pytest.raises(ConfigError, match="choose one"):
        cfg(tmp_path, compile=True).resolved()


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"amp": "fp16"}, "--amp fp16"),
        ({"weight_noise": 0.01}, "--weight-noise"),
        ({"world_size": 2}, "--nproc"),
    ],
)
def test_options_that_cannot_be_captured_are_refused(kw, message):
    # checked before anything touches CUDA, so this runs on any machine
    from deeper.train.amp import AmpPolicy
    from deeper.train.graphs import make_graphed_stepper

    amp = AmpPolicy(torch.float16, "cuda") if kw.get("amp") == "fp16" else None
    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ConfigError, match=message):
        make_graphed_stepper(
            {"net": opt}, {}, amp=amp, device=torch.device("cuda"), clip_grad=None,
            weight_noise=kw.get("weight_noise", 0.0), world_size=kw.get("world_size", 1),
        )  # fmt: skip


def test_loop_calls_end_epoch_once_per_epoch(one_thread):
    class Counting(Stepper):
        ends = 0

        def end_epoch(self, state):
            Counting.ends += 1

    model = torch.nn.Linear(4, 3)
    data = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(5)]
    from deeper.tasks.classify import ClassificationTask

    stepper = Counting({"net": torch.optim.SGD(model.parameters(), lr=0.1)})
    state = LoopState()
    train_one_epoch(model, ClassificationTask(), data, stepper=stepper, state=state)
    assert Counting.ends == 1 and state.global_step == 5


@pytest.mark.gpu
@cuda_only
@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_graphed_training_matches_eager(tmp_path, amp):
    kw = dict(device="cuda", amp=amp, dropout=0.0, batch_size=100, epochs=6, seed=3)
    eager = fit(cfg(tmp_path, "eager", cuda_graphs=False, **kw))
    run = build_run(cfg(tmp_path, "graph", **kw).resolved())
    result = fit(cfg(tmp_path, "graph2", **kw))
    from deeper.train.graphs import GraphedStepper

    assert isinstance(run.stepper, GraphedStepper)
    # same data order and initialisation; kernels may differ in the last bits, so compare outcomes
    assert result["test_accuracy"] == pytest.approx(eager["test_accuracy"], abs=0.05)
    assert min(result["test_accuracy"], eager["test_accuracy"]) > 0.85
    assert result["steps"] == eager["steps"]


@pytest.mark.gpu
@cuda_only
def test_replays_update_the_weights_also_after_an_eager_short_batch(tmp_path):
    # 1,437 digits training images after the split: batch 100 leaves a short last batch every epoch
    run = build_run(cfg(tmp_path, device="cuda", batch_size=100, val_size=0.2).resolved())
    up = run.stepper
    state = LoopState()
    train_one_epoch(run.model, run.task, run.train_loader, stepper=up, state=state)
    n = len(run.train_loader)
    short = len(run.train_loader.dataset) % 100 != 0
    assert up.replays == n - up.warmup - short and up.eager_steps == up.warmup + short
    before = [p.detach().clone() for p in run.model.parameters()]
    grads = [p.grad for p in run.model.parameters()]
    run.train_loader.set_epoch(1)
    train_one_epoch(run.model, run.task, run.train_loader, stepper=up, state=state)
    # the gradients are still the graph's tensors and every replay moved the weights
    assert all(p.grad is g for p, g in zip(run.model.parameters(), grads))
    assert all(not torch.equal(b, p) for b, p in zip(before, run.model.parameters()))
    assert up.capture_seconds > 0


@pytest.mark.gpu
@cuda_only
def test_divergence_is_caught_within_check_every_steps(tmp_path):
    run = build_run(cfg(tmp_path, device="cuda", optimizer="sgd", schedule="constant").resolved())
    state = LoopState()
    train_one_epoch(run.model, run.task, run.train_loader, stepper=run.stepper, state=state)  # captures
    run.stepper.check_every = 3
    run.optimizer.param_groups[0]["lr"] = 1e30  # the optimizer runs eagerly, so this takes effect
    start = state.global_step
    run.train_loader.set_epoch(1)
    with pytest.raises(DivergedError, match="NaN or infinite"):
        train_one_epoch(run.model, run.task, run.train_loader, stepper=run.stepper, state=state)
    assert state.global_step - start <= 3
