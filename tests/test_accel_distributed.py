"""Data-parallel (DDP) and sharded (FSDP) training on CPUs with gloo, 2 processes; torchrun fault tolerance."""

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from deeper.errors import ConfigError
from deeper.train.distributed import Silent, all_reduce_sums, per_rank_batch

REPO = Path(__file__).resolve().parents[1]


def test_single_process_helpers():
    assert all_reduce_sums({"loss": 2.5, "correct": 3.0}, 4) == ({"loss": 2.5, "correct": 3.0}, 4)
    assert per_rank_batch(128, 2) == 64
    with pytest.raises(ConfigError, match="divisible"):
        per_rank_batch(127, 2)
    assert Silent().epoch([], 3) is None  # the logger stand-in of ranks > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, tmp: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    import torch.distributed as dist

    from deeper.accel.fsdp import full_state_dict, local_numel, shard_model
    from deeper.models import create_model
    from deeper.train import Callback, TrainConfig, fit
    from deeper.train.distributed import init_distributed, wrap_ddp

    env = init_distributed("cpu")
    out = {"rank": env.rank, "world": env.world_size}
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g)
    mine = slice(rank * 4, (rank + 1) * 4)

    # DDP gradients of half batches == single-process gradients of the whole batch
    torch.manual_seed(0)
    model = create_model("deep-convnet", dropout=0.0)
    ddp = wrap_ddp(model, env)
    F.cross_entropy(ddp(x[mine]), y[mine]).backward()
    torch.manual_seed(0)
    ref = create_model("deep-convnet", dropout=0.0)
    F.cross_entropy(ref(x), y).backward()
    out["grad_diff"] = max(
        float((p.grad - q.grad).abs().max()) for p, q in zip(model.parameters(), ref.parameters())
    )

    # replicas stay identical after steps on different data
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)
    for step in range(3):
        xs = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(100 * rank + step))
        opt.zero_grad()
        F.cross_entropy(ddp(xs), y[mine]).backward()
        opt.step()
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    out["replicas_equal"] = all(torch.equal(gathered[0], t) for t in gathered)

    # metric sums are added over ranks
    out["reduced"] = all_reduce_sums({"loss": rank + 1.0, "correct": 10.0 * rank}, 3 + rank)

    # fit: every rank trains its shard, reduced train metrics, only rank 0 writes
    rows = []

    class Rows(Callback):
        name = "rows"

        def on_epoch_end(self, run, state, row):
            rows.append({k: row[k] for k in ("train_loss", "train_accuracy", "val_accuracy")})

    cfg = TrainConfig(data="digits", epochs=1, subset=256, batch_size=64, out=f"{tmp}/fit-rank{rank}", schedule="constant",
                      tensorboard=False, progress=False, device="cpu")  # fmt: skip
    result = fit(cfg, callbacks=[Rows()])
    out["rows"], out["fit_steps"], out["world_size"] = rows, result["steps"], result["world_size"]

    # metrics: sums are added and concatenating states gathered across ranks
    from deeper.tasks import StepOutput, create_task
    from deeper.tasks.toys import EnergyDistance
    from deeper.train.metrics import Meter

    fake, real = _points()
    half = slice(rank * 10, (rank + 1) * 10)
    meter = Meter(create_task("gan-2d"), {"energy": EnergyDistance()}, sync=True)
    sums = {"loss_d": torch.tensor(10.0 * (rank + 1)), "loss_g": torch.tensor(5.0)}
    meter.add(StepOutput(None, sums, 10, preds=fake[half], target=real[half]))
    out["meter"] = meter.compute()

    # a task of two parts with an optimizer each (a GAN): both wrapped, replicas stay identical
    gan = TrainConfig(task="gan-2d", task_args={"points": 128, "width": 16}, batch_size=32, epochs=1,
                      out=f"{tmp}/gan-rank{rank}", tensorboard=False, progress=False, device="cpu")  # fmt: skip
    finals = {}

    class Final(Callback):
        name = "final"

        def on_fit_end(self, run, state):
            finals.update({n: float(torch.cat([p.detach().flatten() for p in m.parameters()]).double().sum())
                           for n, m in run.parts.modules.items()})  # fmt: skip

    out["gan_steps"] = fit(gan, callbacks=[Final()])["steps"]
    out["gan_params"] = finals

    # FSDP: sharded parameters, same losses as the unsharded model on the whole batch
    torch.manual_seed(0)
    sharded = shard_model(create_model("deep-convnet", dropout=0.0))
    out["local_numel"] = local_numel(sharded)
    opt = torch.optim.Adam(sharded.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = F.cross_entropy(sharded(x[mine]), y[mine])
        opt.zero_grad()
        loss.backward()
        opt.step()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        losses.append(float(mean) / world)
    out["fsdp_losses"] = losses
    full = full_state_dict(sharded)
    out["fsdp_full_numel"] = sum(v.numel() for v in full.values())
    dist.destroy_process_group()
    Path(tmp, f"rank{rank}.json").write_text(json.dumps(out))


def _points():
    g = torch.Generator().manual_seed(3)
    return torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g) + 1


def _unsharded_losses(x, y, steps=3):
    from deeper.models import create_model

    torch.manual_seed(0)
    model = create_model("deep-convnet", dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    out = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(float(loss.detach()))
    return out, sum(p.numel() for p in model.parameters())


@pytest.mark.multiproc
@pytest.mark.slow
def test_ddp_and_fsdp_on_two_cpu_processes(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert (r0["rank"], r1["rank"], r0["world"]) == (0, 1, 2)
    assert r0["grad_diff"] < 1e-6 and r1["grad_diff"] < 1e-6
    assert r0["replicas_equal"] and r1["replicas_equal"]
    assert r0["reduced"] == r1["reduced"] == [{"loss": 3.0, "correct": 10.0}, 7]
    # fit: same (reduced) train metrics on both ranks, same schedule length as one process, rank 0 alone writes
    assert r0["rows"] == r1["rows"] and len(r0["rows"]) == 1
    assert r0["fit_steps"] == 4 and r0["world_size"] == 2  # 256 images / global batch 64
    assert (tmp_path / "fit-rank0" / "result.json").is_file()
    assert (tmp_path / "fit-rank0" / "model.safetensors").is_file()
    assert not (tmp_path / "fit-rank1").exists()
    # metrics over both ranks are the metrics over all the data
    from deeper.tasks.toys import EnergyDistance

    whole = EnergyDistance()
    whole.update(*_points())
    for r in (r0, r1):
        assert r["meter"]["loss_d"] == 1.5 and r["meter"]["loss_g"] == 0.5
        assert r["meter"]["energy"] == pytest.approx(float(whole.compute()), rel=1e-9)
    # the GAN trained 128 / 32 = 4 steps on both ranks, and rank 0 alone wrote it
    assert r0["gan_steps"] == r1["gan_steps"] == 4 and not (tmp_path / "gan-rank1").exists()
    assert r0["gan_params"] == r1["gan_params"] and set(r0["gan_params"]) == {"G", "D"}  # replicas agree
    # FSDP: each rank holds about half of the parameters; the loss curve is the unsharded one
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g)
    ref_losses, n = _unsharded_losses(x, y)
    assert r0["local_numel"] + r1["local_numel"] >= n and max(r0["local_numel"], r1["local_numel"]) < 0.6 * n
    assert r0["fsdp_full_numel"] == n
    assert r0["fsdp_losses"] == pytest.approx(ref_losses, abs=1e-5)


@pytest.mark.multiproc
@pytest.mark.slow
def test_nproc_launcher_restarts_after_an_injected_failure_and_resumes(tmp_path, monkeypatch, capfd):
    from deeper.train import TrainConfig
    from deeper.train.launch import launch

    out = tmp_path / "run"
    monkeypatch.setenv("DEEPER_INJECT_FAILURE", "1:6")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    cfg = TrainConfig(data="digits", epochs=2, subset=512, batch_size=64, nproc=2, max_restarts=1,
                      checkpoint_every=4, tensorboard=False, device="cpu", out=str(out))  # fmt: skip
    result = launch(cfg, worker="tests.failing_worker")
    err = capfd.readouterr().err
    assert result["world_size"] == 2 and result["nproc"] == 2
    assert result["steps"] == 16 and result["epochs"] == 2 and result["stopped"] == "completed"
    assert "injected failure of rank 1 at step 6" in err
    assert "resuming" in err and "at step 4" in err  # from the snapshot before the failure
    lines = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(lines) == 3  # header + one row per epoch: rank 0 alone logs
    assert not list(out.glob(".launch-*"))  # the launcher cleans up its config file


def test_train_nproc_options_in_help():
    from deeper.cli import build_parser

    text = build_parser().subcommands["train"].format_help()
    for opt in ("--nproc", "--max-restarts", "--amp", "--compile"):
        assert opt in text
