"""The caption task on the engine: its result keys and figures, a short real training that names the
scene's digits far above chance, predict on images of any size, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deeper.cli import main
from deeper.data.captions import CaptionError, parse_caption
from deeper.errors import ConfigError
from deeper.models import model_from_weights, save_weights
from deeper.tasks import create_task
from deeper.tasks.caption import load_split
from deeper.train import TrainConfig, fit

QUIET = dict(tensorboard=False, progress=False, device="cpu")
TINY = dict(
    task="caption", data="scenes-cap", model="show-attend-tell",
    model_kwargs={"width": 0.25, "embed": 16, "hidden": 32, "attention": 16, "grid": 4}, subset=48,
    batch_size=16, epochs=2, task_args={"source": "digits", "val_scenes": 16, "test_scenes": 24, "preview": 4},
    **QUIET,
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> dict:
    return fit(TrainConfig(**TINY, out=str(tmp_path_factory.mktemp("cap") / "run")))


def test_a_run_reports_bleu_cider_and_meaning_and_draws_its_figures(tiny_run):
    r = tiny_run
    for key in ("test_bleu4", "test_cider", "test_meaning_accuracy", "test_bleu1", "test_token_accuracy"):
        assert isinstance(r[key], float), key
    assert r["primary_metric"] == "meaning_accuracy" and 0 <= r["test_meaning_accuracy"] <= 1
    forms = r["test_meaning_by_form"]
    assert sum(v["share"] for k, v in forms.items() if k != "outside_grammar") + forms["outside_grammar"] == (
        pytest.approx(1.0)
    )
    assert len(r["test_examples"]) == 5
    run = Path(r["run_dir"])
    for name in ("captions.png", "attention.png", "result.json", "model.safetensors"):
        assert (run / name).is_file(), name
    assert json.loads((run / "result.json").read_text())["test_cider"] == r["test_cider"]
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val_bleu4", "val_cider", "val_meaning_accuracy"} <= set(header)


def test_the_vocabulary_is_saved_with_the_weights(tiny_run):
    model, meta = model_from_weights(tiny_run["weights"])
    vocab = json.loads(meta["vocab"])
    assert vocab[:4] == ["<pad>", "<start>", "<end>", "<unk>"] and model.num_classes == len(vocab)
    train = load_split("scenes-cap", "train", 48, source="digits")
    words = {
        w for caps in train.captions for c in caps for w in c.replace(":", " :").replace(",", " ,").split()
    }
    assert set(vocab[4:]) == words


def test_training_scenes_can_be_shifted_and_distorted_with_their_captions_unchanged():
    from deeper.data.augment import Augment
    from deeper.models.caption.vocab import Vocabulary
    from deeper.tasks.caption import CaptionLoader, caption_tokens
    from deeper.train.regularize import TrainTransform

    ds = load_split("scenes-cap", "train", 16, source="digits")
    vocab = Vocabulary.build(c for caps in ds.captions for c in caps)
    tokens = caption_tokens(vocab, ds.captions)

    def first(transform=None):
        loader = CaptionLoader(ds, 8, tokens=tokens, shuffle=True, seed=3, transform=transform)
        return next(iter(loader))

    def shifted():
        return TrainTransform(Augment({"crop": 3.0, "elastic": 20.0}), seed=5)

    plain, a, b = first(), first(shifted()), first(shifted())
    assert torch.equal(a.tokens, plain.tokens) and a.references == plain.references
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, plain.images)  # seeded, and changed
    assert a.images.shape == plain.images.shape and float(a.images.min()) >= 0 and float(a.images.max()) <= 1
    # the ink moves but stays: about as much of it as before
    torch.testing.assert_close(a.images.sum((1, 2, 3)), plain.images.sum((1, 2, 3)), rtol=0.15, atol=0)


def _scene_png(path: Path, image: np.ndarray, *, invert: bool = False, scale: int = 1) -> Path:
    img = np.kron(image, np.ones((scale, scale), dtype=np.uint8)) if scale > 1 else image
    Image.fromarray(255 - img if invert else img).save(path)
    return path


def test_predict_writes_the_best_caption_and_the_beam(tiny_run, tmp_path, capsys):
    ds = load_split("scenes-cap", "test", 2, source="digits")
    a = _scene_png(tmp_path / "a.png", ds.images[0, 0].numpy())
    b = _scene_png(
        tmp_path / "b.png", ds.images[1, 0].numpy(), invert=True, scale=3
    )  # 192x192, dark on light
    args = ["predict", "--weights", tiny_run["run_dir"], str(a), str(b), "--beam", "3", "--json",
            "-o", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    answers = out["predictions"]
    assert out["task"] == "caption" and [Path(x["image"]).name for x in answers] == ["a.png", "b.png"]
    for x in answers:
        assert 1 <= len(x["beam"]) <= 3 and x["caption"] == x["beam"][0][0]
        scores = [lp for _, lp in x["beam"]]
        assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)
        assert Path(x["attention"]).is_file()  # an attention model draws where it looked
    assert answers[1]["inverted"] and "inverted" not in answers[0]
    assert main(["predict", "--weights", tiny_run["run_dir"], str(a), "--beam", "1", "--json"]) == 0
    greedy = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"][0]
    assert len(greedy["beam"]) == 1


def test_bad_input_is_one_line(tiny_run, tmp_path, capsys):
    colour = tmp_path / "colour.png"
    Image.fromarray(np.dstack([np.zeros((64, 64)), np.full((64, 64), 200), np.zeros((64, 64))]).astype(np.uint8)).save(colour)  # fmt: skip
    cases = [
        (["predict", "--weights", tiny_run["run_dir"], str(colour)], "a colour image"),
        (["predict", "--weights", tiny_run["run_dir"], str(tmp_path / "none.png")], "image not found"),
        (["predict", "--weights", tiny_run["run_dir"], str(colour), "--beam", "0"], "--beam: must be an integer in [1, 64]"),
        (["train", "--task", "caption", "--data", "mnist", "--model", "nic"], "task 'caption' trains on scenes"),
        (["train", "--task", "caption", "--data", "scenes-cap", "--model", "unet"], "is a segment model"),
        (["train", "--task", "caption", "--data", "scenes-cap", "--model", "nic", "--task-arg", "beam=0"],
         "option beam must be in [1, 64]"),
        (["train", "--task", "caption", "--data", "scenes-cap", "--model", "nic", "--model-arg", "encoder=vgg99"],
         "unknown encoder 'vgg99'"),
        (["train", "--task", "caption", "--data", "scenes-cap", "--model", "nic", "--model-arg", "inject=late"],
         "unknown inject 'late'"),
        (["train", "--task", "caption", "--data", "scenes-cap", "--model", "nic", "--mixup", "0.2"],
         "does not take --mixup"),
        (["train", "--task", "caption", "--data", "scenes-cap", "--model", "nic", "--augment", "crop=2,flip=0.5"],
         "takes only --augment ops that keep a scene's captions true"),
    ]  # fmt: skip
    for argv, message in cases:
        code = main(argv + ["--out", str(tmp_path / "run")] if argv[0] == "train" else argv)
        err = capsys.readouterr().err.strip()
        assert code != 0 and message in err and len(err.splitlines()) == 1, (argv, err)
    # weights that are not a captioning model's: no vocabulary
    model, meta = model_from_weights(tiny_run["weights"])
    bare = tmp_path / "bare.safetensors"
    save_weights(model, bare, {k: v for k, v in meta.items() if k != "vocab"})
    assert main(["predict", "--weights", str(bare), str(colour)]) != 0
    assert "no vocabulary" in capsys.readouterr().err


def test_task_options_are_checked():
    assert create_task("caption", {"beam": 4}).args["beam"] == 4
    with pytest.raises(ConfigError, match="option alpha_c must be in"):
        create_task("caption", {"alpha_c": -1.0})


def _named(text: str, classes) -> list[int] | None:
    try:
        return list(parse_caption(text, classes).labels)
    except CaptionError:
        return None


@pytest.mark.slow
def test_a_short_training_names_the_scenes_digits_far_above_chance(tmp_path):
    torch.manual_seed(0)
    r = fit(TrainConfig(
        task="caption", data="scenes-cap", model="show-attend-tell", subset=1200, batch_size=32, epochs=5,
        lr=0.003, label_smoothing=0.0, model_kwargs={"width": 0.5, "embed": 48, "hidden": 96, "attention": 32},
        task_args={"source": "digits", "val_scenes": 100, "test_scenes": 300, "figures": False, "alpha_c": 0.0},
        out=str(tmp_path / "run"), **QUIET,
    ))  # fmt: skip
    task = create_task("caption")
    net, _ = task.load_model(r["weights"])
    ds = load_split("scenes-cap", "test", 300, source="digits")
    texts, _ = task.caption_dataset(net, ds)
    named = right = parsed = 0
    for i, text in enumerate(texts):
        labels = _named(text, ds.classes)
        if labels is None:
            continue
        parsed += 1
        present = set(ds.labels[i, : int(ds.counts[i])].tolist())
        named += len(labels)
        right += sum(d in present for d in labels)
    # a digit named at random is in a scene of 2-3 digits about a quarter of the time
    assert parsed >= 0.9 * len(texts) and right / named > 0.6, (parsed, right / max(1, named), texts[:5])
    assert r["test_bleu4"] > 0.3 and r["test_meaning_accuracy"] > 0.1
