"""Training and evaluating with the scratch engine: it learns, it trains like torch, it resumes,
and it shares the torch engine's run folders, weights, CLI and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
import yaml
from safetensors.torch import load_file
from threadpoolctl import threadpool_limits

from deeper.cli import main
from deeper.models import create_model, load_weights
from deeper.scratch import create_net, create_optimizer, cupy_available
from deeper.scratch.trainer import ScheduleDriver, fit_scratch, train_step
from deeper.train import TrainConfig, create_schedule
from tests.helpers import last_json, run


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Small matrix products are slower with several BLAS threads, badly so on a busy machine."""
    with threadpool_limits(1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def numpy_run(tmp_path_factory):
    """A small real run: the book's SimpleConvNet on digits, trained by the NumPy engine from the CLI."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("numpy-run") / "run"
    buf = io.StringIO()
    with (
        contextlib.redirect_stdout(buf),
        contextlib.redirect_stderr(io.StringIO()),
        threadpool_limits(1, "blas"),
    ):
        code = main(
            ["train", "--engine", "numpy", "--model", "simple-convnet", "--data", "digits", "--recipe", "book",
             "--epochs", "2", "--lr", "0.003", "--batch-size", "50", "--out", str(out), "--json"]
        )  # fmt: skip
    assert code == 0
    return out, last_json(buf.getvalue())


def test_a_numpy_training_run_learns(numpy_run):
    _, r = numpy_run
    assert r["test_accuracy"] > 0.7  # chance is 0.1; about 0.9 after these 2 epochs
    assert r["engine"] == "numpy" and r["dtype"] == "float32" and r["steps"] == 2 * 26 and r["epochs"] == 2


def test_the_run_folder_is_the_torch_engines(numpy_run, tmp_path, capsys):
    out, r = numpy_run
    for name in ("config.yaml", "metrics.csv", "curves.png", "result.json", "model.safetensors", "tb"):
        assert (out / name).exists(), name
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["engine"] == "numpy" and cfg["model"] == "simple-convnet"
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    assert json.loads((out / "result.json").read_text()) == r
    # the --json result carries every key the torch engine's does
    code, stdout, _ = run(
        capsys, "train", "--data", "digits", "--model", "mlp", "--epochs", "1", "--max-steps", "2",
        "--no-tensorboard", "--out", str(tmp_path / "torch"), "--json",
    )  # fmt: skip
    assert code == 0
    assert set(last_json(stdout)) <= set(r)
    _, meta = load_weights(r["weights"])
    assert meta["model"] == "simple-convnet" and meta["engine"] == "numpy" and meta["dataset"] == "digits"


def test_numpy_weights_score_the_same_in_both_engines(numpy_run, capsys):
    _, r = numpy_run
    scores = {}
    for engine, dtype in (
        ("torch", "float32"),
        ("numpy", "float32"),
        ("numpy", "float64"),
        ("numpy", "float16"),
    ):
        code, stdout, err = run(
            capsys,
            "eval",
            "--weights",
            r["weights"],
            "--data",
            "digits",
            "--engine",
            engine,
            "--dtype",
            dtype,
            "--json",
        )
        assert code == 0, err
        scores[engine, dtype] = last_json(stdout)["test_accuracy"]
    assert scores["torch", "float32"] == pytest.approx(r["test_accuracy"], abs=1 / 360)
    assert scores["numpy", "float32"] == pytest.approx(scores["torch", "float32"], abs=1 / 360)
    assert scores["numpy", "float64"] == pytest.approx(scores["torch", "float32"], abs=1 / 360)
    assert scores["numpy", "float16"] == pytest.approx(scores["numpy", "float32"], abs=3 / 360)


def test_deep_convnet_training_steps_equal_torchs():
    """Same weights, same batches, dropout off, float64: three Adam steps land on the same weights."""
    torch.manual_seed(0)
    tnet = create_model("deep-convnet", dropout=0.0).double()
    net = create_net("deep-convnet", dropout=0.0, dtype="float64")
    net.load_state_dict(tnet.state_dict())
    opt = create_optimizer("adam", lr=0.01)
    topt = torch.optim.Adam(tnet.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x, t = rng.random((8, 1, 28, 28)), rng.integers(0, 10, 8)
        loss, correct = train_step(net, opt, x, t)
        logits = tnet(torch.from_numpy(x))
        tloss = TF.cross_entropy(logits, torch.from_numpy(t))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-10)
        assert correct == int((logits.argmax(1) == torch.from_numpy(t)).sum())
    for key, value in tnet.state_dict().items():
        np.testing.assert_allclose(net.state_dict()[key], value.numpy(), rtol=1e-8, atol=1e-10, err_msg=key)


def small_cfg(out, **kw) -> TrainConfig:
    base = dict(
        engine="numpy", model="mlp", data="digits", subset=200, batch_size=32, epochs=2, recipe="fast",
        model_kwargs={"hidden_sizes": [40, 30], "dropout": 0.2, "batchnorm": True}, tensorboard=False,
        out=str(out),
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_resumed_run_continues_bit_for_bit(tmp_path):
    """7 steps per epoch: stop after 4, resume to 10 (across the epoch boundary) == 10 straight.

    The run uses dropout (the network's RNG), batch norm (buffers), one-cycle (schedule
    state, Adam's beta1 cycling) and label smoothing, so every piece of state must come back.
    """
    straight = fit_scratch(small_cfg(tmp_path / "a", max_steps=10), log=lambda m: None)
    fit_scratch(small_cfg(tmp_path / "b", max_steps=4), log=lambda m: None)
    resumed = fit_scratch(small_cfg(tmp_path / "b", max_steps=10), resume=True, log=lambda m: None)
    assert straight["steps"] == resumed["steps"] == 10
    a, b = load_file(straight["weights"]), load_file(resumed["weights"])
    assert a.keys() == b.keys() and "hidden.0.bn.running_var" in a
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed["test_accuracy"] == straight["test_accuracy"]


@pytest.mark.parametrize(
    "optimizer, schedule, extra",
    [("adam", "onecycle", {}), ("momentum", "onecycle", {}), ("sgd", "cosine", {"warmup": 1.0})],
)
def test_schedules_drive_the_scratch_optimizer_as_they_drive_torch(optimizer, schedule, extra):
    cfg = TrainConfig(optimizer=optimizer, schedule=schedule, lr=0.05, epochs=4, **extra).resolved()
    ours = create_optimizer(optimizer, lr=cfg.optim.lr)
    driver = ScheduleDriver(cfg, ours, total_steps=40, steps_per_epoch=10)
    from deeper.train import create_optimizer as torch_optimizer

    topt = torch_optimizer(optimizer, [torch.zeros(1, requires_grad=True)], lr=cfg.optim.lr)
    tsched = create_schedule(
        schedule,
        topt,
        40,
        steps_per_epoch=10,
        warmup_steps=round((cfg.optim.warmup or 0) * 10),
        **cfg.optim.schedule_kwargs,
    )
    seen = set()
    for _ in range(40):
        group = topt.param_groups[0]
        assert ours.lr == pytest.approx(group["lr"], rel=1e-12)
        if "betas" in group:
            assert ours.beta1 == pytest.approx(group["betas"][0], rel=1e-12)
        if group.get("momentum"):
            assert ours.momentum == pytest.approx(group["momentum"], rel=1e-12)
        seen.add(round(ours.lr, 9))
        topt.step()
        tsched.step()
        driver.step()
    assert len(seen) > 20  # the rate really moved


def test_half_precision_training_learns(tmp_path):
    """The notes' half-precision claim, from scratch: float16 arrays throughout (sums in float32)."""
    r = fit_scratch(
        small_cfg(
            tmp_path / "h", dtype="float16", subset=None, epochs=4, model_kwargs={"hidden_sizes": [64]}
        ),
        log=lambda m: None,
    )
    assert r["dtype"] == "float16" and r["test_accuracy"] > 0.85
    state, meta = load_weights(r["weights"])
    assert meta["dtype"] == "float16" and all(v.dtype == torch.float16 for v in state.values())


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "--engine", "numpy", "--data", "digits", "--amp", "bf16"],
            "--amp is not available with --engine numpy",
        ),
        (
            ["train", "--data", "digits", "--dtype", "float16"],
            "--dtype sets the precision of --engine numpy/cupy",
        ),
        (
            ["train", "--engine", "numpy", "--data", "digits", "--optimizer", "adamw"],
            "unknown scratch-engine optimizer 'adamw'",
        ),
        (
            ["train", "--engine", "numpy", "--data", "digits", "--model", "alexnet"],
            "unknown scratch-engine network 'alexnet'",
        ),
        (
            ["eval", "--engine", "numpy", "--weights", "missing.safetensors", "--data", "digits"],
            "weights file not found",
        ),
    ],
)
def test_user_errors_are_one_line(argv, message, capsys):
    code, _, err = run(capsys, *argv)
    assert code == 1 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_eval_refuses_bfloat16_in_the_numpy_engine(numpy_run, capsys):
    code, _, err = run(
        capsys,
        "eval",
        "--engine",
        "numpy",
        "--weights",
        numpy_run[1]["weights"],
        "--data",
        "digits",
        "--dtype",
        "bfloat16",
    )
    assert code == 1 and "not 'bfloat16'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(cupy_available(), reason="CuPy and a GPU are present")
def test_cupy_engine_without_cupy_says_so_in_one_line(capsys):
    code, _, err = run(capsys, "train", "--engine", "cupy", "--data", "digits")
    assert code == 1 and "CuPy" in err and "--engine numpy" in err
    assert len(err.strip().splitlines()) == 1


def test_help_explains_the_engine(capsys):
    for cmd in ("train", "eval"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = capsys.readouterr().out
        assert "--engine" in text and "numpy" in text


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_engine_computes_what_numpy_computes():
    import cupy

    from deeper.scratch.backend import array_module, to_numpy

    net_np = create_net("deep-convnet", dropout=0.0, dtype="float64")
    net_cp = create_net("deep-convnet", dropout=0.0, dtype="float64", xp=array_module("cupy"))
    net_cp.load_state_dict(net_np.state_dict())
    opt_np, opt_cp = create_optimizer("adam"), create_optimizer("adam")
    rng = np.random.default_rng(0)
    for _ in range(2):
        x, t = rng.random((4, 1, 28, 28)), rng.integers(0, 10, 4)
        a = train_step(net_np, opt_np, x, t)[0]
        b = train_step(net_cp, opt_cp, cupy.asarray(x), cupy.asarray(t))[0]
        assert a == pytest.approx(b, rel=1e-9)
    for key, value in net_np.state_dict().items():
        got = net_cp.state_dict()[key]
        assert isinstance(got, cupy.ndarray)  # never a mix of array types
        np.testing.assert_allclose(to_numpy(got), value, rtol=1e-8, atol=1e-10)


def test_interrupt_saves_a_checkpoint_that_resumes(tmp_path, monkeypatch):
    import deeper.scratch.trainer as trainer
    from deeper.train.engine import Interrupted

    real, calls = trainer.train_step, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_step", flaky)
    out = tmp_path / "r"
    with pytest.raises(Interrupted, match="step 3.*--resume"):
        fit_scratch(small_cfg(out), log=lambda m: None)
    assert (out / "checkpoints" / "step-00000003").is_dir()
    monkeypatch.setattr(trainer, "train_step", real)
    result = fit_scratch(small_cfg(out), resume=True, log=lambda m: None)
    assert result["steps"] == 14  # 200 images in batches of 32: 7 steps an epoch, 2 epochs
