"""Regularizers: label smoothing, mixup, cutmix, input and weight noise, clipping, early stopping,
dropout and normalisation options, and exact resumption of a run that uses them."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from deeper.errors import ConfigError
from deeper.models import create_model, model_from_weights
from deeper.tasks.classify import ClassificationTask
from deeper.train import LoopState, Stepper, TrainConfig, build_run, evaluate, fit
from deeper.train.regularize import EarlyStopping, InputNoise, Mix
from tests.helpers import assert_resumes_bit_for_bit

TINY = dict(data="digits", tensorboard=False, progress=False)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_label_smoothing_loss_matches_the_formula():
    eps, k = 0.1, 5
    logits = torch.randn(8, k, generator=gen(), dtype=torch.float64)
    y = torch.randint(0, k, (8,), generator=gen(1))
    out = ClassificationTask(label_smoothing=eps).loss({"net": nn.Identity()}, (logits, y))
    logp = torch.log_softmax(logits, 1)
    # target distribution: (1 - eps) on the true class + eps / K spread over all classes
    expected = -((1 - eps) * logp[torch.arange(8), y] + eps / k * logp.sum(1)).mean()
    assert float(out.loss) == pytest.approx(float(expected), rel=1e-12)
    assert float(
        ClassificationTask(label_smoothing=eps).evaluation_step({"net": nn.Identity()}, (logits, y)).loss
    ) == (pytest.approx(float(F.cross_entropy(logits, y))))  # evaluation reports the plain loss


def test_mixup_blends_images_and_labels_that_sum_to_one():
    x = torch.rand(16, 1, 8, 8, generator=gen())
    y = torch.arange(16) % 4
    g = gen(3)
    mx, my, info = Mix(4, mixup=0.4)(x, y, g)
    lam = info["lam"]
    assert 0 < lam < 1 and not info["cutmix"]
    assert torch.allclose(my.sum(1), torch.ones(16))
    # find the partner of each image from the labels and check the pixels are the same blend
    g = gen(3)
    torch.randint(0, 2**62, (1,), generator=g)  # the NumPy seed drawn first
    perm = torch.randperm(16, generator=g)
    assert torch.allclose(mx, lam * x + (1 - lam) * x[perm])
    onehot = F.one_hot(y, 4).float()
    assert torch.allclose(my, lam * onehot + (1 - lam) * onehot[perm])


def test_cutmix_pastes_a_box_and_weights_labels_by_its_area():
    x = (torch.arange(8, dtype=torch.float32) / 10 + 0.1).view(8, 1, 1, 1).expand(8, 1, 16, 16).clone()
    y = torch.arange(8)  # one class per image, so the label weights show where each pixel came from
    for seed in range(5):
        mx, my, info = Mix(8, cutmix=1.0)(x, y, gen(seed))
        assert info["cutmix"]
        assert torch.allclose(my.sum(1), torch.ones(8))
        pasted = mx[:, 0] != x[:, 0]  # pixels that came from the partner image
        moved = pasted.flatten(1).any(1)
        for i in moved.nonzero().flatten():
            assert torch.equal(pasted[i], pasted[moved][0])  # one box for the whole batch
            own = 1 - float(pasted[i].float().mean())
            assert float(my[i, i]) == pytest.approx(own) == pytest.approx(info["lam"])
            partner = int(torch.round((mx[i, 0][pasted[i]][0] - 0.1) * 10))
            assert float(my[i, partner]) == pytest.approx(1 - own)


def test_mixing_both_picks_one_per_batch():
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8) % 2
    kinds = {Mix(2, mixup=0.2, cutmix=1.0)(x, y, gen(s))[2]["cutmix"] for s in range(20)}
    assert kinds == {True, False}
    with pytest.raises(ConfigError):
        Mix(2)


def test_input_noise_has_the_given_std_and_stays_in_range():
    x = torch.full((64, 1, 28, 28), 0.5)
    y = InputNoise(0.05)(x, gen())
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert float((y - x).std()) == pytest.approx(0.05, rel=0.05)
    assert torch.equal(y, InputNoise(0.05)(x, gen()))


def linear_problem():
    torch.manual_seed(0)
    model = nn.Linear(4, 3).double()
    x = torch.randn(10, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (10,))
    return model, (x, y)


def test_weight_noise_takes_the_gradient_at_noisy_weights_and_updates_the_clean_ones():
    model, batch = linear_problem()
    clean = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(7)
    Stepper.single(opt, weight_noise=0.3).step(ClassificationTask(), {"net": model}, batch, LoopState())
    # replay: the same noise, the gradient there, applied to the clean weights
    twin = nn.Linear(4, 3).double()
    torch.manual_seed(7)
    with torch.no_grad():
        for p, c in zip(twin.parameters(), clean):
            p.copy_(c + 0.3 * torch.randn_like(c))
    F.cross_entropy(twin(batch[0]), batch[1]).backward()
    for p, c, t in zip(model.parameters(), clean, twin.parameters()):
        assert torch.allclose(p.detach(), c - 0.1 * t.grad)


def test_gradient_clipping_limits_the_step():
    model, batch = linear_problem()
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    big = (batch[0] * 1000, batch[1])
    Stepper.single(opt, clip_grad=0.5).step(ClassificationTask(), {"net": model}, big, LoopState())
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert float((after - before).norm()) == pytest.approx(0.5, rel=1e-6)


def fake_run(model):
    return SimpleNamespace(final_model=model, val_loader=object(), task=ClassificationTask())


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    model = nn.Linear(2, 2)
    es = EarlyStopping(2)
    run = fake_run(model)
    es.on_fit_start(run, None)
    history, reasons = [], []
    for epoch, acc in enumerate([0.5, 0.7, 0.6, 0.65, 0.9], start=1):
        with torch.no_grad():
            model.weight.fill_(epoch)
        history.append({"epoch": epoch})
        reasons.append(es.on_epoch_end(run, None, {"epoch": epoch, "val_accuracy": acc}))
        if reasons[-1]:
            break
    assert reasons == [None, None, None, reasons[-1]] and "best 0.7000 at epoch 2" in reasons[-1]
    es.on_fit_end(run, SimpleNamespace(history=history))
    assert torch.all(model.weight == 2)  # the weights of epoch 2


def test_early_stopping_on_a_loss_minimises_and_its_state_survives_a_checkpoint():
    es = EarlyStopping(None, monitor="val_loss")
    run = fake_run(nn.Linear(1, 1))
    es.on_fit_start(run, None)
    for epoch, loss in enumerate([1.0, 0.5, 0.7], start=1):
        assert (
            es.on_epoch_end(run, None, {"epoch": epoch, "val_loss": loss}) is None
        )  # no patience: never stops
    assert es.best == 0.5 and es.best_epoch == 2
    import io

    buf = io.BytesIO()
    torch.save(es.state_dict(), buf)
    buf.seek(0)
    again = EarlyStopping(None, monitor="val_loss")
    again.load_state_dict(torch.load(buf, weights_only=True))
    assert again.best == 0.5 and again.best_epoch == 2 and again.bad_epochs == 1


def test_early_stopping_needs_a_validation_split():
    with pytest.raises(ConfigError, match="validation split"):
        EarlyStopping(2).on_fit_start(SimpleNamespace(val_loader=None), None)


@pytest.mark.slow
def test_restore_best_through_fit_saves_the_best_validation_weights(tmp_path):
    # a large constant lr makes the validation accuracy wander, so the best epoch is rarely the last
    cfg = TrainConfig(**TINY, epochs=3, subset=384, optimizer="sgd", lr=0.3, schedule="constant",
                      restore_best=True, out=str(tmp_path / "r"))  # fmt: skip
    fit(cfg)
    rows = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    col = rows[0].split(",").index("val_accuracy")
    best = max(float(r.split(",")[col]) for r in rows[1:])
    model, _ = model_from_weights(tmp_path / "r" / "model.safetensors")
    run = build_run(cfg.resolved())
    assert evaluate(model, run.task, run.val_loader)["accuracy"] == pytest.approx(best)


@pytest.mark.parametrize("norm", ["batch", "layer", "instance", "group"])
def test_normalisation_choices_build_train_and_reload(norm, tmp_path):
    model = create_model("deep-convnet", norm=norm, dropout=0.2)
    assert isinstance(model.norm1, nn.BatchNorm2d if norm == "batch" else nn.GroupNorm)
    assert model.drop1.p == 0.2 and model.drop2.p == 0.2
    x = torch.rand(4, 1, 28, 28)
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    mlp = create_model("mlp", norm=norm if norm != "instance" else "layer")
    assert mlp(x).shape == (4, 10)


def test_defaults_are_still_exactly_the_book_network():
    model = create_model("deep-convnet")
    assert not any(isinstance(m, nn.BatchNorm2d | nn.GroupNorm) for m in model.modules())
    assert sum(p.numel() for p in model.parameters()) == 123552
    with pytest.raises(ConfigError, match="unknown normalisation"):
        create_model("deep-convnet", norm="weird")
    with pytest.raises(ConfigError, match="unknown normalisation 'instance'"):
        create_model("mlp", norm="instance")


def test_dropout_and_norm_options_reach_the_model_and_the_weights_file(tmp_path):
    result = fit(
        TrainConfig(**TINY, epochs=1, max_steps=2, dropout=0.1, norm="group", out=str(tmp_path / "r"))
    )
    model, meta = model_from_weights(result["weights"])
    assert isinstance(model.norm3, nn.GroupNorm) and model.drop1.p == 0.1
    saved = load_file(result["weights"])
    assert "norm1.weight" in saved


@pytest.mark.slow
def test_a_run_with_augmentation_mixing_and_noise_resumes_bit_for_bit(tmp_path):
    opts = dict(
        TINY, epochs=2, augment="default", mixup=0.2, cutmix=1.0, input_noise=0.02, weight_noise=0.001,
        clip_grad=5.0, warmup=0.3, schedule="cosine", subset=256, early_stop=5,
    )  # fmt: skip
    straight, split = assert_resumes_bit_for_bit(tmp_path, opts)
    line = (straight / "metrics.csv").read_text().splitlines()[2].split(",")[:6]
    assert line == (split / "metrics.csv").read_text().splitlines()[2].split(",")[:6]


def test_options_are_checked():
    for bad, message in [
        (dict(mixup=-1), "--mixup"),
        (dict(clip_grad=0), "--clip-grad"),
        (dict(early_stop=0), "--early-stop"),
        (dict(dropout=1.0), "--dropout"),
        (dict(ensemble=0), "--ensemble"),
        (dict(folds=5), "folds and fold"),
    ]:
        with pytest.raises(ConfigError, match=message):
            TrainConfig(**bad).resolved()
    assert math.isfinite(TrainConfig(warmup=0.5).resolved().optim.warmup)
