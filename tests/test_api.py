"""The Python API (``import deeper``): train, load, predict, evaluate, datasets, summary; and the example
notebook, executed in a Jupyter kernel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import deeper
from tests.conftest import REPO


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> deeper.Model:
    out = tmp_path_factory.mktemp("api") / "lenet5-digits"
    return deeper.train(model="lenet5", data="digits", epochs=2, subset=400, seed=0, out=str(out),
                        tensorboard=False, progress=False)  # fmt: skip


def test_train_returns_the_model_with_its_history_and_result(trained):
    assert isinstance(trained, deeper.Model) and isinstance(trained.net, torch.nn.Module)
    assert not trained.net.training and trained.name == "lenet5" and trained.dataset == "digits"
    assert [row["epoch"] for row in trained.history] == [1, 2]
    assert all(isinstance(row["val_accuracy"], float) for row in trained.history)
    assert trained.result == json.loads((trained.run_dir / "result.json").read_text())
    assert "lenet5" in repr(trained) and "classify" in repr(trained)


def test_the_train_package_stays_the_engine(trained):
    import deeper.train as engine
    from deeper.train.entry import fit

    assert deeper.train is engine and engine.fit is fit and deeper.fit is fit
    assert deeper.TrainConfig is engine.TrainConfig


def test_predict_on_dataset_images_agrees_with_evaluate(trained):
    test = deeper.datasets.load("digits", "test")
    answers = trained.predict(test.images)
    assert [a["image"] for a in answers] == list(range(len(test)))
    assert all(abs(sum(a["probabilities"]) - 1) < 1e-5 for a in answers)
    accuracy = np.mean([a["label"] == y for a, y in zip(answers, test.labels.tolist())])
    evaluated = trained.evaluate()  # on the dataset the weights record
    assert evaluated["data"] == "digits" and abs(evaluated["test_accuracy"] - accuracy) < 1e-9
    assert abs(trained.result["test_accuracy"] - accuracy) < 1e-9
    logits = trained(test.images[:5].float() / 255)
    assert [a["label"] for a in answers[:5]] == logits.argmax(1).tolist()


def test_predict_on_files_and_pil_images_is_deeper_predict(trained, tmp_path):
    from PIL import Image

    from deeper.inference import predict_files

    test = deeper.datasets.load("digits", "test")
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.png"
        Image.fromarray(test.images[i, 0].numpy()).resize((112, 112)).save(p)
        paths.append(str(p))
    expected, _ = predict_files(trained.run_dir, paths, device="cpu")
    assert trained.predict(paths) == expected
    assert deeper.predict(trained.run_dir, paths) == expected
    from_pil = trained.predict([Image.open(p) for p in paths])
    assert [a["probabilities"] for a in from_pil] == [a["probabilities"] for a in expected]
    assert [a["image"] for a in from_pil] == [0, 1, 2]
    big = np.stack([np.asarray(Image.open(p)) for p in paths])  # (3, 112, 112): not the input size
    assert [a["label"] for a in trained.predict(big)] == [a["label"] for a in expected]


def test_load_a_run_or_a_weights_file(trained, tmp_path):
    run = deeper.load(trained.run_dir)
    assert run.history == trained.history and run.result == trained.result
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes((trained.run_dir / "model.safetensors").read_bytes())
    alone = deeper.load(lone)
    assert alone.history == [] and alone.result is None and alone.run_dir is None
    x = deeper.datasets.load("digits", "test").images[:20]
    assert [a["probabilities"] for a in alone.predict(x)] == [a["probabilities"] for a in trained.predict(x)]
    with pytest.raises(deeper.errors.DeeperError, match="no such run folder or weights file"):
        deeper.load(tmp_path / "missing")


def test_the_chapters_float16_check_and_gallery(trained, tmp_path):
    fp32, fp16 = trained.evaluate(dtype="float32"), trained.evaluate(dtype="float16")
    assert fp16["dtype"] == "float16" and abs(fp16["test_accuracy"] - fp32["test_accuracy"]) <= 0.01
    ds, wrong, pred = trained.misclassified()
    assert len(wrong) == round((1 - fp32["test_accuracy"]) * len(ds))
    png = trained.gallery(tmp_path / "wrong.png", max_images=12)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_of_a_name_a_model_or_a_module():
    from deeper.models import count_parameters, create_model

    s = deeper.summary("lenet5", "1x28x28")
    assert s.total_params == count_parameters(create_model("lenet5", num_classes=10, in_chans=1))
    net = create_model("lenet5", num_classes=10, in_chans=1)
    assert deeper.summary(net, (1, 28, 28)).total_macs == s.total_macs
    with pytest.raises(deeper.errors.ConfigError, match="needs input_shape"):
        deeper.summary(net)


def test_datasets_names_info_and_load():
    assert {"mnist", "fashion-mnist", "digits"} <= set(deeper.datasets.names())
    assert deeper.datasets.names("fashion*") == ["fashion-mnist"]
    info = deeper.datasets.info("digits")
    assert info["shape"] == (1, 28, 28) and len(info["classes"]) == 10
    test = deeper.datasets.load("digits", "test")
    assert test.images.dtype == torch.uint8 and tuple(test.images.shape[1:]) == info["shape"]


# ------------------------------------------------------------------------------- the example notebook

NOTEBOOK = REPO / "examples" / "chapter8.ipynb"


@pytest.mark.slow
def test_the_example_notebook_runs_from_end_to_end(tmp_path):
    """examples/chapter8.ipynb, executed in a real Jupyter kernel with small settings in its parameters cell."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    [params] = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    params.source = 'DATA, MODEL, EPOCHS, SUBSET, OUT = "digits", "deep-convnet", 1, 300, "runs/notebook"'
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert "float16" in outputs and "parameters" in outputs
    assert (tmp_path / "runs" / "notebook" / "model.safetensors").is_file()
    assert (tmp_path / "misclassified.png").read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------------------- the documented examples


def _python_blocks(path: Path) -> list[str]:
    text = path.read_text()
    return [b.split("\n", 1)[1] for b in text.split("```")[1::2] if b.startswith("python\n")]


def test_the_api_doc_example_runs(tmp_path, monkeypatch):
    [block] = _python_blocks(REPO / "docs" / "api.md")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "docs/api.md", "exec"), namespace)
    assert isinstance(namespace["model"], deeper.Model) and (tmp_path / "wrong.png").is_file()
    assert namespace["same"].history == namespace["model"].history


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = _python_blocks(REPO / "README.md")
    assert blocks, "the README has a Python example"
    monkeypatch.chdir(tmp_path)
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md (python block {i + 1})", "exec"), {})
