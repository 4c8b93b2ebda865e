"""What a user sees of a run and of trained weights (issue 29): the run folder's console.log, the
per-step loss in steps.csv and TensorBoard, progress bars for evaluation, a notice for a precision
that is slow on this machine, and quantized or pruned weights that eval and predict take."""

from __future__ import annotations

import csv
import re

import pytest
import torch

from deeper.train import TrainConfig, fit
from tests.helpers import run

TINY = dict(data="digits", model="lenet5", tensorboard=False, progress=False)


def rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------- console.log


def test_the_run_folder_keeps_the_console_log(tmp_path, capsys, monkeypatch):
    import deeper.runtime

    monkeypatch.setattr(deeper.runtime, "cpu_slowdown", lambda dtype, engine="torch": 8.0)
    out = tmp_path / "r"
    code, stdout, err = run(
        capsys, "train", "--data", "digits", "--model", "lenet5", "--epochs", "2", "--amp", "fp16",
        "--out", str(out), "--no-progress", "--no-tensorboard",
    )  # fmt: skip
    assert code == 0, err
    log = (out / "console.log").read_text().splitlines()
    said = [re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", line) for line in log]
    # every notice and epoch line printed on stderr, in order, then the closing line of stdout
    assert said[:-1] == [line for line in err.splitlines() if line.startswith("deeper: ")]
    assert any("--amp fp16" in line for line in said)  # a notice said before the run folder existed
    assert sum(line.startswith("deeper: epoch ") for line in said) == 2
    assert said[-1] == stdout.strip().splitlines()[-1] and said[-1].startswith("test accuracy")


def test_a_resumed_run_continues_its_console_log_and_a_stopped_one_says_why(tmp_path, monkeypatch):
    from deeper.tasks.classify import ClassificationTask
    from deeper.train import Interrupted

    calls = {"n": 0}
    real = ClassificationTask.loss

    def flaky(self, nets, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, nets, batch)

    monkeypatch.setattr(ClassificationTask, "loss", flaky)
    out = tmp_path / "r"
    with pytest.raises(Interrupted):
        fit(TrainConfig(**TINY, epochs=1, out=str(out)))
    first = (out / "console.log").read_text()
    assert "deeper: training " in first and "error: interrupted at step 3" in first
    monkeypatch.setattr(ClassificationTask, "loss", real)
    fit(TrainConfig(**TINY, epochs=1, out=str(out)), resume=True)
    log = (out / "console.log").read_text()
    assert log.startswith(first) and "deeper: resuming " in log[len(first) :]
    assert "deeper: epoch 1/1" in log[len(first) :]


def test_a_log_function_that_prints_through_notice_is_recorded_once(tmp_path):
    from deeper.runtime import notice

    seen = []
    fit(TrainConfig(**TINY, epochs=1, max_steps=2, out=str(tmp_path / "a")), log=lambda m: notice(f"[a] {m}"))
    fit(TrainConfig(**TINY, epochs=1, max_steps=2, out=str(tmp_path / "b")), log=seen.append)
    a = (tmp_path / "a" / "console.log").read_text()
    assert a.count("training ") == 1 and "[a] training" not in a  # the engine's words, once
    b = (tmp_path / "b" / "console.log").read_text()
    assert b.count("deeper: training ") == 1 and any(m.startswith("training ") for m in seen)


# ----------------------------------------------------------------- per-step loss


@pytest.mark.slow
def test_per_step_loss_in_the_csv_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "r"
    result = fit(TrainConfig(data="digits", model="lenet5", progress=False, epochs=2, out=str(out)))
    steps = rows(out / "steps.csv")
    assert [int(r["step"]) for r in steps] == list(range(1, result["steps"] + 1))
    assert {r["epoch"] for r in steps} == {"1", "2"}
    losses = [float(r["loss"]) for r in steps]
    assert len(set(losses)) == len(losses)  # each step's own loss, not a running mean held for a while
    # the epoch's train loss is the image-weighted mean of its steps' losses (the last batch is smaller)
    per_epoch = rows(out / "metrics.csv")
    n, batch = 1294, 128  # digits' training images after the validation split; the fast recipe's batch
    sizes = [batch] * (n // batch) + ([n % batch] if n % batch else [])
    first = [float(r["loss"]) for r in steps if r["epoch"] == "1"]
    mean = sum(loss * k for loss, k in zip(first, sizes)) / n
    assert float(per_epoch[0]["train_loss"]) == pytest.approx(mean, rel=1e-9)
    events = EventAccumulator(str(out / "tb")).Reload()
    tb = [(e.step, e.value) for e in events.Scalars("loss/train_step")]
    assert [s for s, _ in tb] == [int(r["step"]) for r in steps]
    assert [v for _, v in tb] == pytest.approx(losses, rel=1e-6)


@pytest.mark.slow
def test_steps_csv_of_a_resumed_run_equals_the_straight_runs(tmp_path):
    from tests.helpers import assert_resumes_bit_for_bit

    straight, split = assert_resumes_bit_for_bit(tmp_path, dict(TINY, epochs=2), stop_after=14)
    assert rows(split / "steps.csv") == rows(straight / "steps.csv")
    assert len(rows(straight / "steps.csv")) == 22


def test_resume_drops_the_steps_logged_after_the_checkpoint(tmp_path):
    out = tmp_path / "r"
    fit(TrainConfig(**TINY, epochs=1, max_steps=5, out=str(out)))
    with open(out / "steps.csv", "a") as f:  # as if the run had gone on past its checkpoint and died
        f.write("6,1,9.0\n7,1,9.0\n")
    fit(TrainConfig(**TINY, epochs=1, out=str(out)), resume=True)
    steps = rows(out / "steps.csv")
    assert [int(r["step"]) for r in steps] == list(range(1, 12)) and "9.0" not in {r["loss"] for r in steps}


def test_a_diverging_run_leaves_the_losses_that_led_to_it(tmp_path):
    from deeper.errors import DivergedError

    out = tmp_path / "r"
    with pytest.raises(DivergedError, match="at step"):
        fit(TrainConfig(**dict(TINY, model="deep-convnet"), optimizer="sgd", lr=1e6, epochs=1, out=str(out)))
    steps = rows(out / "steps.csv")
    assert steps and float(steps[-1]["loss"]) > float(steps[0]["loss"])  # the losses before the NaN
    assert "error: " in (out / "console.log").read_text().splitlines()[-1]


# ----------------------------------------------------------------- progress bars


def test_evaluation_has_a_progress_bar(tmp_path, capsys):
    out = tmp_path / "r"
    fit(TrainConfig(**dict(TINY, progress=True), epochs=1, subset=300, out=str(out)))
    err = capsys.readouterr().err
    assert (
        "epoch 1/1" in err and "val:" in err and "test:" in err
    )  # training's bar, then validation's, test's
    code, _, err = run(capsys, "eval", "--weights", str(out), "--progress")
    assert code == 0 and "eval:" in err and "batch" in err
    code, _, err = run(capsys, "eval", "--weights", str(out), "--no-progress")
    assert code == 0 and "eval:" not in err


# ----------------------------------------------------------------- slow choices


def test_float16_on_a_cpu_that_emulates_it_gets_a_notice(tmp_path, capsys, monkeypatch):
    import deeper.runtime

    out = tmp_path / "r"
    fit(TrainConfig(**TINY, epochs=1, max_steps=2, out=str(out)))
    capsys.readouterr()
    monkeypatch.setattr(deeper.runtime, "cpu_slowdown", lambda dtype, engine="torch": 12.5)
    code, _, err = run(capsys, "eval", "--weights", str(out), "--dtype", "float16", "--device", "cpu")
    assert code == 0 and "float16 on the CPU is slow on this machine" in err and "12.5x slower" in err
    code, _, err = run(capsys, "eval", "--weights", str(out), "--dtype", "float32", "--device", "cpu")
    assert code == 0 and "slow" not in err
    monkeypatch.setattr(
        deeper.runtime, "cpu_slowdown", lambda dtype, engine="torch": 0.6
    )  # a CPU with float16 units
    code, _, err = run(capsys, "eval", "--weights", str(out), "--dtype", "float16", "--device", "cpu")
    assert code == 0 and "slow" not in err


def test_cpu_slowdown_is_measured_once_and_numpy_float16_is_slow():
    from deeper.runtime import SLOW_FACTOR, cpu_slowdown

    factor = cpu_slowdown(torch.float16)
    assert factor > 0 and cpu_slowdown(torch.float16) == factor
    # NumPy has no float16 matrix kernels (~10x and more on an idle machine): slow enough for the notice
    assert cpu_slowdown(torch.float16, "numpy") >= SLOW_FACTOR


def test_the_scratch_engine_in_float16_gets_the_notice(tmp_path, capsys):
    code, _, err = run(
        capsys, "train", "--engine", "numpy", "--dtype", "float16", "--data", "digits", "--model", "mlp",
        "--epochs", "1", "--max-steps", "2", "--out", str(tmp_path / "r"), "--no-progress", "--no-tensorboard",
    )  # fmt: skip
    assert code == 0, err
    assert "training in float16 in NumPy is slow on this machine" in err


# ----------------------------------------------------------------- quantized and pruned weights


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A LeNet-5 trained briefly on the offline digits data, and a few of its test images as PNG files."""
    from PIL import Image

    from deeper.data import load_dataset

    root = tmp_path_factory.mktemp("usability")
    r = fit(TrainConfig(**TINY, epochs=4, out=str(root / "run"), device="cpu"))
    assert r["test_accuracy"] > 0.6
    test = load_dataset("digits", "test")
    files = []
    for i in range(24):
        path = root / f"digit{i}.png"
        Image.fromarray(test.images[i, 0].numpy()).save(path)
        files.append(str(path))
    return root / "run", files


def labels(capsys, weights, files) -> list[int]:
    import json

    code, out, err = run(capsys, "predict", "--weights", str(weights), *files, "--json")
    assert code == 0, err
    return [a["label"] for a in json.loads(out.strip().splitlines()[-1])["predictions"]]


def eval_json(capsys, weights, *extra) -> dict:
    import json

    code, out, err = run(capsys, "eval", "--weights", str(weights), "--json", *extra)
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_a_quantized_model_is_evaluated_and_used_by_eval_and_predict(method, trained, tmp_path, capsys):
    import deeper
    from deeper.accel.quantize import quantize_weights

    run_dir, files = trained
    q = tmp_path / f"{method}.safetensors"
    r = quantize_weights(run_dir, "digits", method, q, batch_size=100, repeats=1)
    scored = eval_json(capsys, q)  # the dataset, the model and its shape all read from the file
    assert scored["data"] == "digits" and scored["model"] == "lenet5"
    assert scored["test_accuracy"] == pytest.approx(r["test_accuracy"], abs=1e-12)  # the very same model
    dense, quantized = labels(capsys, run_dir, files), labels(capsys, q, files)
    assert sum(a == b for a, b in zip(dense, quantized)) >= 0.9 * len(files)
    model = deeper.load(q)  # the Python API takes it too, on the CPU whatever it is moved to
    assert model.to("cpu").predict(files[:2])[0]["label"] == quantized[0]
    from pathlib import Path

    from deeper.app.models import ServedModel

    served = ServedModel(q)  # and deeper serve
    assert served.answer(Path(files[0]), tmp_path)["answer"]["label"] == quantized[0]
    code, _, err = run(capsys, "eval", "--weights", str(q), "--dtype", "float16")
    assert code == 1 and "computes in its own precision" in err and len(err.strip().splitlines()) == 1


def test_a_quantized_file_from_before_the_metadata_was_carried_still_loads(trained, tmp_path, capsys):
    import safetensors
    from safetensors.torch import load_file, save_file

    from deeper.accel.quantize import quantize_weights

    run_dir, _ = trained
    q = tmp_path / "int4.safetensors"
    r = quantize_weights(run_dir, "digits", "int4", q, batch_size=100, repeats=1)
    with safetensors.safe_open(str(q), framework="pt") as f:
        meta = f.metadata()
    old = {k: meta[k] for k in ("model", "method", "dataset", "group_size")}  # what quantize wrote before
    save_file(load_file(q), tmp_path / "old.safetensors", metadata=old)
    scored = eval_json(capsys, tmp_path / "old.safetensors")
    assert scored["test_accuracy"] == pytest.approx(r["test_accuracy"], abs=1e-12)


def test_a_pruned_model_is_saved_for_eval_and_predict(trained, tmp_path, capsys):
    import json

    from deeper.accel.prune import weight_sparsity
    from deeper.models import model_from_weights

    run_dir, files = trained
    saved = tmp_path / "pruned.safetensors"
    code, out, err = run(
        capsys, "prune", "--weights", str(run_dir), "--data", "digits", "--method", "unstructured,structured",
        "--sparsities", "0.3,0.6", "-o", str(tmp_path / "p.png"), "--save", str(saved), "--json",
    )  # fmt: skip
    assert code == 0, err
    r = json.loads(out.strip().splitlines()[-1])
    row = next(x for x in r["rows"] if (x["method"], x["target_sparsity"]) == ("unstructured", 0.6))
    assert r["saved"]["output"] == str(saved) and r["saved"]["method"] == "unstructured"
    net, meta = model_from_weights(saved)
    assert weight_sparsity(net) == pytest.approx(row["weight_sparsity"]) and "test_accuracy" not in meta
    assert json.loads(meta["pruned"])["target_sparsity"] == 0.6
    assert eval_json(capsys, saved)["test_accuracy"] == pytest.approx(row["test_accuracy"], abs=1e-12)
    assert len(labels(capsys, saved, files)) == len(files)
    code, _, err = run(capsys, "prune", "--weights", str(run_dir), "--data", "digits", "--sparsities", "0.5",
                       "-o", str(tmp_path / "q.png"), "--save", str(tmp_path / "x.pt"))  # fmt: skip
    assert code == 1 and "must be a .safetensors file" in err


@pytest.mark.slow
def test_qat_and_binary_files_are_evaluated_as_quantize_measured_them(trained, tmp_path, capsys):
    from deeper.accel.quantize import quantize_weights

    run_dir, files = trained
    for method, extra in (("qat", {"qat_steps": 20}), ("binary", {"binary_epochs": 1})):
        q = tmp_path / f"{method}.safetensors"
        r = quantize_weights(run_dir, "digits", method, q, batch_size=100, repeats=1, **extra)
        assert eval_json(capsys, q)["test_accuracy"] == pytest.approx(r["test_accuracy"], abs=1e-12), method
        assert len(labels(capsys, q, files)) == len(files)
