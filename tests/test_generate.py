"""Image generation (issue 23): the networks' shapes, the GAN steps, the gradient penalty, the diffusion
process and samplers, the scores (FID, KID, floor, coverage), ``deeper generate`` and its errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from deeper.errors import ConfigError
from deeper.generate.diffusion import Schedule, ddim_invert, ddim_sample, ddim_timesteps, ddpm_sample, guided
from deeper.generate.losses import critic_with_penalty, d_loss_gan, g_loss_gan
from deeper.generate.scores import ClassShare, fid_kid
from deeper.models import create_model, list_models
from deeper.tasks import create_task
from deeper.train import LoopState, Stepper, TrainConfig, fit
from tests.helpers import dry_run_options, last_json, run

QUIET = dict(tensorboard=False, progress=False, device="cpu")


# ----------------------------------------------------------------------------- networks


def test_the_family_is_registered():
    assert list_models(family="generate") == ["dcgan", "wgan-gp"] and list_models(family="diffusion") == [
        "ddpm-unet"
    ]


@pytest.mark.parametrize("size, chans", [(28, 1), (32, 3), (64, 1)])
@pytest.mark.parametrize("conditional", [False, True])
def test_generator_and_discriminator_shapes(size, chans, conditional):
    torch.manual_seed(0)
    pair = create_model("dcgan", num_classes=10, in_chans=chans, img_size=size, latent=16, width=8, d_width=8,
                        conditional=conditional)  # fmt: skip
    y = torch.arange(5) if conditional else None
    x = pair.generator(torch.randn(5, 16), y)
    assert x.shape == (5, chans, size, size) and x.min() >= -1 and x.max() <= 1  # tanh output
    assert pair.discriminator(x, y).shape == (5, 1)
    # the paper's rules: no pooling, strided (transposed) convolutions, batch norm, LeakyReLU in D
    kinds = {type(m) for m in pair.modules()}
    assert (
        not kinds & {nn.MaxPool2d, nn.AvgPool2d}
        and {nn.ConvTranspose2d, nn.BatchNorm2d, nn.LeakyReLU} <= kinds
    )
    assert all(m.stride == (2, 2) for m in pair.discriminator.modules() if isinstance(m, nn.Conv2d))


def test_the_wgan_critic_has_no_batch_norm():
    critic = create_model("wgan-gp").discriminator
    assert not any(isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) for m in critic.modules())
    x = torch.randn(4, 1, 28, 28)  # each sample's score is its own: batch composition does not matter
    assert torch.allclose(critic(x)[:2], critic(x[:2]), atol=1e-6)


def test_the_spectral_discriminator_has_no_batch_norm_and_unit_spectral_norms():
    torch.manual_seed(0)
    d = create_model("dcgan", conditional=True, width=8, d_width=8, d_norm="spectral").discriminator
    assert not any(isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) for m in d.modules())
    layers = [m for m in d.modules() if isinstance(m, nn.Conv2d | nn.Linear | nn.Embedding)]
    assert len(layers) == 4  # two convolutions, the score and the class embedding
    x, y = torch.randn(4, 1, 28, 28), torch.arange(4)
    for _ in range(30):  # each training-mode forward is one power iteration
        d(x, y)
    for m in layers:
        raw = m.parametrizations.weight.original.flatten(1)
        sigma = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2)
        assert abs(torch.linalg.matrix_norm(raw, ord=2).item() - 1) > 0.25  # the raw weight is not of norm 1
        assert abs(sigma.item() - 1) < 0.02
    d.eval()  # in evaluation no iteration: the score is a function of the input alone
    assert torch.equal(d(x, y), d(x, y))
    with pytest.raises(ConfigError, match="d_norm must be batch or spectral"):
        create_model("dcgan", d_norm="layer")


def test_a_spectral_dcgan_round_trips_through_its_state_dict():
    torch.manual_seed(0)
    a = create_model("dcgan", width=8, d_width=8, d_norm="spectral")
    a.discriminator(torch.randn(4, 1, 28, 28))  # moves the power iteration's vectors off their start
    b = create_model("dcgan", width=8, d_width=8, d_norm="spectral")
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(a.discriminator.eval()(x), b.discriminator.eval()(x))


def test_the_conditional_generator_follows_its_label():
    g = create_model("dcgan", conditional=True, width=8).generator.eval()
    z = torch.randn(1, 64).repeat(2, 1)
    a, b = g(z, torch.tensor([3, 3])), g(z, torch.tensor([3, 4]))
    assert torch.equal(a[0], a[1]) and not torch.allclose(b[0], b[1])
    with pytest.raises(ValueError, match="needs labels"):
        g(z)


def test_the_unet_predicts_noise_of_the_input_shape_and_reads_time_and_label():
    torch.manual_seed(0)
    net = create_model("ddpm-unet", width=8, conditional=True, dropout=0.0).eval()
    for p in net.parameters():  # zero-initialised outputs would hide the inputs' effect
        nn.init.normal_(p, 0, 0.1) if p.ndim > 1 else None
    x = torch.randn(2, 1, 28, 28)
    t = torch.tensor([10, 10])
    out = net(x, t, torch.tensor([1, 1]))
    assert out.shape == x.shape
    assert not torch.allclose(out, net(x, torch.tensor([500, 500]), torch.tensor([1, 1])))
    assert not torch.allclose(out, net(x, t, torch.tensor([2, 2])))
    assert net(torch.randn(3, 1, 64, 64), torch.tensor([1, 2, 3])).shape == (3, 1, 64, 64)  # no label: "none"


# ----------------------------------------------------------------------------- GAN steps


class Recording(Stepper):
    """Records which optimizer steps, and which networks' parameters each step changed."""

    def __init__(self, opts, nets):
        super().__init__(opts)
        self.nets, self.log = nets, []

    def update(self, name, loss, state, **kw):
        before = {n: [p.detach().clone() for p in m.parameters()] for n, m in self.nets.items()}
        super().update(name, loss, state, **kw)
        changed = {
            n
            for n, m in self.nets.items()
            if any(not torch.equal(a, p) for a, p in zip(before[n], m.parameters()))
        }
        self.log.append((name, changed))


def _gan(model: str, **task_args):
    task = create_task("generate", {"conditional": True, **task_args})
    torch.manual_seed(0)
    pair = create_model(model, conditional=True, width=8, d_width=8, latent=8)
    task.loss_kind, task.latent = pair.loss, 8
    nets = {"G": pair.generator, "D": pair.discriminator}
    opts = {n: torch.optim.Adam(m.parameters(), lr=1e-2) for n, m in nets.items()}
    return task, nets, Recording(opts, nets)


def test_a_dcgan_step_updates_the_discriminator_then_the_generator_each_only_its_own():
    task, nets, stepper = _gan("dcgan")
    batch = (torch.rand(6, 1, 28, 28), torch.arange(6))
    out = task.training_step(nets, batch, stepper, LoopState())
    assert stepper.log == [("D", {"D"}), ("G", {"G"})]
    assert out.count == 6 and set(out.sums) >= {"loss_d", "loss_g"}


def test_wgan_gp_steps_the_critic_n_critic_times_per_generator_step():
    task, nets, stepper = _gan("wgan-gp", n_critic=3)
    state = LoopState()
    for _ in range(6):
        task.training_step(nets, (torch.rand(4, 1, 28, 28), torch.arange(4)), stepper, state)
        state.global_step += 1
    names = [n for n, _ in stepper.log]
    assert names == ["D", "D", "D", "G", "D", "D", "D", "G"]
    assert all(changed == {n} for n, changed in stepper.log)


def test_gan_losses_by_hand():
    logit = torch.tensor([[0.0]])
    assert torch.isclose(d_loss_gan(logit, logit), torch.tensor(2 * math.log(2)))
    assert torch.isclose(g_loss_gan(torch.tensor([[2.0]])), torch.tensor(math.log(1 + math.exp(-2))))


def test_one_sided_label_smoothing_stops_pushing_real_logits_at_the_smoothed_label():
    at = torch.tensor([[math.log(0.9 / 0.1)]], requires_grad=True)  # D says "real" with probability 0.9
    fake = torch.tensor([[-30.0]])  # a generated image D is sure of: its term is ~0
    entropy = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    loss = d_loss_gan(at, fake, real_label=0.9)
    assert float(loss.detach()) == pytest.approx(entropy, abs=1e-6)
    (grad,) = torch.autograd.grad(loss, at)
    assert abs(float(grad)) < 1e-6  # the smoothed target's minimum: no push towards certainty
    (grad_plain,) = torch.autograd.grad(d_loss_gan(at, fake), at)
    assert float(grad_plain) == pytest.approx(-0.1, abs=1e-6)  # the plain loss still pushes it up
    # the task passes its real_label to the discriminator's loss: same nets and batch, a different D loss
    losses = []
    for real_label in (1.0, 0.8):
        task, nets, stepper = _gan("dcgan", real_label=real_label)
        torch.manual_seed(1)
        out = task.training_step(nets, (torch.rand(6, 1, 28, 28), torch.arange(6)), stepper, LoopState())
        losses.append(float(out.sums["loss_d"]))
    assert losses[0] != pytest.approx(losses[1], rel=1e-3)


def test_the_gradient_penalty_against_a_hand_case():
    # a linear critic w.x has the gradient w everywhere: penalty (|w| - 1)^2 = (5 - 1)^2
    critic = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 4.0]]))
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    s_real, s_fake, gp = critic_with_penalty(critic, real, fake, torch.rand(8))
    assert torch.isclose(gp, torch.tensor(16.0)) and torch.allclose(s_real, real @ critic.weight.T)

    # |x|^2 / 2 has the gradient x: the penalty is the mean of (|x_mix| - 1)^2 at the mixtures
    class Half(nn.Module):
        def forward(self, x):
            return 0.5 * x.square().sum(1, keepdim=True)

    real, fake = torch.tensor([[3.0, 0.0], [0.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    alpha = torch.tensor([0.5, 0.25])  # mixtures (2, 0) and (0, 1.5): (2 - 1)^2 and (1.5 - 1)^2
    _, _, gp = critic_with_penalty(Half(), real, fake, alpha)
    assert torch.isclose(gp, torch.tensor((1.0 + 0.25) / 2))
    # and it trains the critic: the penalty has a gradient with respect to the weights
    _, _, gp = critic_with_penalty(critic, real, fake, alpha)
    gp.backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- diffusion


def test_the_forward_process_matches_its_closed_form():
    s = Schedule(100)
    torch.manual_seed(0)
    x0 = torch.full((200_000,), 0.7, dtype=torch.float64)
    x = x0.clone()
    for t in range(60):  # x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) noise, step by step
        x = (1 - s.betas[t]).sqrt() * x + s.betas[t].sqrt() * torch.randn_like(x)
    mean, std = s.abar[59].sqrt() * 0.7, (1 - s.abar[59]).sqrt()
    assert abs(x.mean() - mean) < 0.01 and abs(x.std() - std) < 0.01
    closed = s.q_sample(x0, torch.full((len(x0),), 59), torch.randn_like(x0))
    assert abs(closed.mean() - mean) < 0.01 and abs(closed.std() - std) < 0.01
    assert torch.allclose(
        s.q_sample(x0[:3], torch.zeros(3, dtype=torch.long), torch.zeros(3)), x0[:3] * s.abar[0].sqrt()
    )
    assert s.abar[-1] < 1e-3  # at T the image is (almost) pure noise
    assert torch.isclose(Schedule(1000).betas[0], torch.tensor(1e-4, dtype=torch.float64))  # the paper's


def _oracle(x0: torch.Tensor, s: Schedule):
    """The exact noise predictor of a distribution that is one point ``x0``."""

    def eps(x, t):
        a = s.abar[t].to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    return eps


@pytest.mark.parametrize("steps", [1, 5, 50])
def test_samplers_recover_the_point_an_exact_noise_predictor_knows(steps):
    s = Schedule(200)
    x0 = torch.rand(3, 1, 4, 4, dtype=torch.float64) * 2 - 1
    x_T = torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(ddim_sample(_oracle(x0, s), s, x_T, steps), x0, atol=1e-6)
    assert torch.allclose(
        ddim_sample(_oracle(x0, s), s, x_T, steps, eta=1.0, generator=torch.Generator()), x0, atol=1e-6
    )
    if steps == 50:
        assert torch.allclose(ddpm_sample(_oracle(x0, s), s, x_T, generator=torch.Generator()), x0, atol=1e-6)


def test_ddim_inverts_a_known_noise_exactly_in_the_limit_of_many_steps():
    s = Schedule(1000)

    def eps(x, t):  # any smooth noise predictor
        return 0.5 * torch.tanh(x) + 1e-3 * t.view(-1, 1).to(x.dtype)

    x0 = torch.rand(32, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    errors = [
        (ddim_sample(eps, s, ddim_invert(eps, s, x0, n), n, clip=False) - x0).abs().max()
        for n in (10, 100, 1000)
    ]
    assert errors[0] > 5 * errors[1] > 25 * errors[2] and errors[2] < 0.1  # the error falls as 1 / steps


def test_ddim_timesteps_and_guidance():
    assert ddim_timesteps(1000, 5) == [999, 749, 500, 250, 0]
    assert ddim_timesteps(10, 50) == list(range(9, -1, -1))
    calls = []

    class Net(nn.Module):
        num_classes = 10

        def forward(self, x, t, labels=None, tokens=None):
            calls.append(labels.tolist())
            return torch.where(labels[:, None] == 10, torch.zeros_like(x), torch.ones_like(x))

    eps = guided(Net(), torch.tensor([3, 4]), scale=3.0)(torch.zeros(2, 1), torch.tensor([5, 5]))
    assert calls == [[3, 4, 10, 10]] and torch.equal(eps, torch.full((2, 1), 3.0))  # u + 3 (c - u)


# ----------------------------------------------------------------------------- scores


@pytest.fixture(scope="module")
def digits():
    from deeper.data import load_dataset

    ds = load_dataset("digits", "train")
    return ds.images[:600].float() / 255, ds.labels[:600]


@pytest.fixture(scope="module")
def features():
    from deeper.data import load_dataset
    from deeper.generate.features import train_classifier

    ds = load_dataset("digits", "train")
    return train_classifier(
        ds.images[600:], ds.labels[600:], 10, epochs=3, seed=0
    )  # other images than scored


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    from torchvision.transforms.functional import gaussian_blur

    return gaussian_blur(x, [9, 9], [sigma, sigma])


def test_fid_of_a_set_against_itself_is_zero_and_grows_with_blur(digits, features):
    x, _ = digits
    same = fid_kid(features, x, x)
    assert abs(same["fid"]) < 1e-6
    scores = [fid_kid(features, x, _blur(x, s)) for s in (0.5, 1.0, 2.0)]
    fids = [s["fid"] for s in scores]
    assert 0 < fids[0] < fids[1] < fids[2]
    assert same["kid"] < scores[1]["kid"] < scores[2]["kid"] and scores[2]["kid"] > 0
    floor = fid_kid(features, x[:300], x[300:])[
        "fid"
    ]  # two halves of one set: the floor, above 0 (300 samples)
    assert 0 < floor < fid_kid(features, x[:300], _blur(x[300:], 2.0))["fid"]


def test_class_share_counts_the_classifiers_labels():
    m, top = ClassShare(4, "min"), ClassShare(4, "max")
    logits = F.one_hot(torch.tensor([0, 0, 1, 2, 2, 2, 3, 3]), 4).float()
    for metric in (m, top):
        metric.update({"logits": logits})
    assert m.compute() == 1 / 8 and top.compute() == 3 / 8
    assert m.shares().tolist() == [0.25, 0.125, 0.375, 0.25]


def test_the_feature_net_reads_before_the_last_layer(features, digits):
    f, logits = features(digits[0][:5])
    assert f.shape == (5, features.num_features) == (5, 84) and logits.shape == (5, 10)
    assert not features.training and not any(p.requires_grad for p in features.parameters())


# ----------------------------------------------------------------------------- the tasks, the command, errors


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gan") / "run"
    from deeper.tasks.base import get_task_class

    settings = dict(get_task_class("generate").dry_run)
    settings["task_args"] = {**settings["task_args"], "figures": True}
    result = fit(TrainConfig(task="generate", **settings, **QUIET, out=str(out)))
    return out, result


@pytest.mark.slow
def test_the_gan_run_reports_the_scores_and_draws_its_figures(gan_run):
    out, result = gan_run
    for key in ("test_fid", "fid_floor", "test_kid", "test_class_min", "test_class_max"):
        assert isinstance(result[key], float) and math.isfinite(result[key]), key
    assert result["fid_floor"] == result["test_fid_floor"] and len(result["test"]["classes"]) == 10
    assert abs(sum(result["test"]["classes"]) - 1) < 1e-9
    assert "trained here on digits" in result["feature_network"]
    for name in ("samples.png", "interpolation.png"):
        assert Image.open(out / name).size[0] > 28
    assert json.loads((out / "result.json").read_text())["test_fid"] == result["test_fid"]


@pytest.mark.slow
def test_deeper_generate_draws_a_grid_of_the_asked_size(gan_run, tmp_path, capsys):
    out, _ = gan_run
    png = tmp_path / "grid.png"
    code, stdout, _ = run(capsys, "generate", "--weights", str(out), "-n", "12", "--columns", "4", "--label", "3",
                          "--seed", "5", "-o", str(png), "--json")  # fmt: skip
    assert code == 0 and last_json(stdout)["images"] == 12 and last_json(stdout)["label"] == 3
    w, h = Image.open(png).size
    assert (w, h) == (4 * 30 + 2, 3 * 30 + 2)  # 28-pixel images, 2-pixel padding
    again = tmp_path / "again.png"
    run(capsys, "generate", "--weights", str(out), "-n", "12", "--columns", "4", "--label", "3", "--seed", "5",
        "-o", str(again))  # fmt: skip
    assert png.read_bytes() == again.read_bytes()  # the seed decides


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv, message",
    [
        (["-o", "grid.jpg"], "must be a .png file"),
        (["--label", "12", "-o", "g.png"], "--label must be in [0, 9]"),
        (["--prompt", "a 3 left of a 7", "-o", "g.png"], "not a text-to-image model"),
        (["--trajectory", "-o", "g.png"], "use --interpolate for a GAN"),
        (["--steps", "10", "-o", "g.png"], "--steps and --guidance are for diffusion models"),
        (["-n", "0", "-o", "g.png"], "argument -n/--samples: must be an integer in [1, 10000]"),
    ],
)
def test_deeper_generate_errors_are_one_line(gan_run, argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "generate", "--weights", str(gan_run[0]), *argv)
    assert code in (1, 2) and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_generate_refuses_weights_that_are_not_a_generator(tmp_path, capsys):
    from deeper.models import save_weights

    path = tmp_path / "c.safetensors"
    save_weights(create_model("lenet5"), path, {"model": "lenet5", "task": "classify"})
    code, _, err = run(capsys, "generate", "--weights", str(path), "-o", str(tmp_path / "g.png"))
    assert code == 1 and "holds no generator (weights of task 'classify')" in err


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"task": "diffusion", "model": "dcgan"},
            "model 'dcgan' is a generate model; task 'diffusion' takes diffusion",
        ),
        (
            {"task": "generate", "model": "ddpm-unet"},
            "is a diffusion model; task 'generate' takes generate models",
        ),
        (
            {"task": "generate", "model": "lenet5"},
            "lenet5' is a classify model; task 'generate' takes generate",
        ),
        ({"task": "generate", "model": "dcgan", "data": "scenes-det"}, "task 'generate' trains on images"),
        ({"task": "generate", "model": "dcgan", "mixup": 0.2}, "does not take --mixup"),
        ({"task": "generate", "model": "dcgan", "batch_size": 100}, "larger than the"),
        (
            {
                "task": "generate",
                "model": "wgan-gp",
                "task_args": {"test_samples": 8, "val_samples": 8, "real_label": 0.9},
            },
            "real_label is for the GAN loss; model 'wgan-gp' trains with wgan-gp",
        ),  # fmt: skip
    ],
)
def test_bad_training_settings_are_config_errors(options, message, tmp_path):
    settings = {"data": "digits", "subset": 64, "val_size": 0.2, "epochs": 1,
                "model_kwargs": {"width": 8}, "task_args": {"test_samples": 8, "val_samples": 8}}  # fmt: skip
    settings.update(options)
    if settings["model"] == "lenet5" or settings["model"] == "ddpm-unet":
        settings.pop("model_kwargs")
    with pytest.raises(ConfigError, match=message):
        fit(TrainConfig(**settings, **QUIET, out=str(tmp_path / "r")))


@pytest.mark.parametrize("flag", [True, False])
def test_the_gan_task_trains_in_the_memory_layout_the_run_asks_for(flag, tmp_path):
    from deeper.tasks.base import get_task_class
    from deeper.train.build import BuildContext

    settings = dict(get_task_class("generate").dry_run)
    cfg = TrainConfig(
        task="generate", **settings, **QUIET, channels_last=flag, out=str(tmp_path / "r")
    ).resolved()
    task = create_task("generate", settings["task_args"])
    built = task.build(BuildContext(cfg, torch.device("cpu")))
    for net in (built.parts.modules["G"], built.parts.modules["D"]):
        convs = [m.weight for m in net.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
        wide = [w for w in convs if w.shape[1] > 1 and w.shape[-1] > 1]  # (one channel: both layouts at once)
        assert wide and all(w.is_contiguous(memory_format=torch.channels_last) == flag for w in wide)
    x, _ = next(iter(built.train))
    assert built.train.channels_last == flag and x.dim() == 4


def test_a_classifier_of_another_dataset_is_refused(tmp_path):
    from deeper.models import save_weights

    path = tmp_path / "fashion.safetensors"
    save_weights(create_model("lenet5"), path, {"model": "lenet5", "num_classes": 10, "in_chans": 1,
                                               "dataset": "fashion-mnist", "task": "classify"})  # fmt: skip
    with pytest.raises(ConfigError, match="trained on fashion-mnist, not digits"):
        fit(TrainConfig(task="generate", model="dcgan", data="digits", subset=64, epochs=1, **QUIET,
                        task_args={"classifier": str(path)}, out=str(tmp_path / "r")))  # fmt: skip


@pytest.mark.slow
def test_wgan_gp_resumes_in_a_new_process_bit_for_bit(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from tests.test_tasks import _parts, _rows

    options = dict(task="generate", model="wgan-gp", data="digits", subset=48, batch_size=8, val_size=0.2,
                   epochs=2, eval_batch_size=32, model_kwargs={"width": 8, "d_width": 8, "latent": 8}, lr=1e-4,
                   task_args={"n_critic": 2, "val_samples": 8, "test_samples": 16, "figures": False}, **QUIET)  # fmt: skip
    straight = fit(TrainConfig(**options, out=str(tmp_path / "straight")))
    fit(TrainConfig(**options, max_steps=straight["steps"] // 2 + 1, out=str(tmp_path / "split")))
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
    p = subprocess.run(
        cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=300
    )
    assert p.returncode == 0, p.stderr[-2000:]
    a, b = _parts(tmp_path / "straight"), _parts(tmp_path / "split")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _rows(tmp_path / "straight") == _rows(tmp_path / "split")
    assert json.loads(p.stdout.strip().splitlines()[-1])["test_fid"] == straight["test_fid"]


# ----------------------------------------------------------------------------- text to image


def test_the_caption_vocabulary_encodes_with_padding_and_names_unknown_words():
    from deeper.generate.text import TextVocab, tokenize

    assert tokenize("Two digits: 3, 7 and 1.") == ["two", "digits", ":", "3", ",", "7", "and", "1"]
    v = TextVocab.build(["a 3 to the left of a 7", "there is a 7"])
    ids = v.encode(["a 3 left of a 7", "a 9"], 8)
    assert ids.shape == (2, 8) and (ids[0, 6:] == 0).all() and ids[1, 1] == 1  # padding; 9 is unknown
    assert v.unknown("a 9 above a zebra") == ["9", "above", "zebra"]
    assert TextVocab.from_json(v.to_json()).words == v.words
    with pytest.raises(ConfigError, match="not a list of words"):
        TextVocab.from_json('{"a": 1}')


class Oracle(nn.Module):
    """A stand-in digit classifier that answers the given labels in turn (the crops' order)."""

    def __init__(self, labels):
        super().__init__()
        self.labels, self.w = list(labels), nn.Parameter(torch.zeros(1))

    def forward(self, crops):
        out = F.one_hot(torch.tensor(self.labels[: len(crops)]), 10).float()
        self.labels = self.labels[len(crops) :]
        return out, out


@pytest.fixture(scope="module")
def scenes():
    from deeper.data import load_dataset
    from deeper.data.scenes import load_scenes

    return load_scenes("scenes-cap", "test", n=40, digits=load_dataset("digits", "test"), cache=False)


def test_the_reader_finds_the_digits_of_real_scenes_and_checks_their_captions(scenes):
    from deeper.generate.text import find_blobs, prompt_matches

    x = scenes.images.float() / 255
    found = [find_blobs(img[0].numpy()) for img in x]
    assert sum(len(b) == int(c) for b, c in zip(found, scenes.counts)) >= 0.9 * len(x)
    truth = []  # the true labels in the reader's order (boxes left to right), where the count is right
    for b, boxes, labels, c in zip(found, scenes.boxes, scenes.labels, scenes.counts):
        order = boxes[:c, 0].argsort()
        truth += labels[:c][order].tolist() if len(b) == c else [0] * len(b)
    own = prompt_matches(x, [caps[0] for caps in scenes.captions], Oracle(truth), scenes.classes)
    assert sum(own) >= 0.9 * len(x)  # a scene's own caption holds as read back
    swapped = [scenes.captions[(i + 1) % len(x)][0] for i in range(len(x))]  # another scene's caption
    assert sum(prompt_matches(x, swapped, Oracle(truth), scenes.classes)) <= 0.3 * len(x)
    assert prompt_matches(x[:1], ["not a caption"], Oracle(truth), scenes.classes) == [False]


def test_the_readers_crops_of_real_scenes_carry_their_digits_labels(scenes):
    from deeper.generate.text import reader_crops

    crops, truth = reader_crops(scenes.images, scenes.boxes, scenes.labels, scenes.counts)
    digits = int(scenes.counts.sum())
    assert (
        crops.dtype == torch.uint8 and crops.shape[1:] == (1, 28, 28) and 0.9 * digits <= len(crops) <= digits
    )
    assert sorted(truth.tolist()) != sorted(range(len(truth))) and set(truth.tolist()) <= set(range(10))
    with_labels = sorted(
        scenes.labels[i, j].item() for i, c in enumerate(scenes.counts) for j in range(int(c))
    )
    assert sum(abs(a - b) for a, b in zip(sorted(truth.tolist()), with_labels)) <= 0.1 * digits * 9
    # each crop is the ink of one digit, centred: its ink's centre within 3 pixels of the middle
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = crops[:, 0].float()
    cy, cx = (mass * ys).sum((1, 2)) / mass.sum((1, 2)), (mass * xs).sum((1, 2)) / mass.sum((1, 2))
    assert ((cy - 13.5).abs() < 3).all() and ((cx - 13.5).abs() < 3).all()
    with pytest.raises(ConfigError, match="no digit"):
        reader_crops(
            torch.zeros(2, 1, 64, 64, dtype=torch.uint8),
            scenes.boxes[:2],
            scenes.labels[:2],
            scenes.counts[:2],
        )


def test_a_reader_trained_on_its_own_crops_reads_real_scenes():
    from deeper.data import load_dataset
    from deeper.data.scenes import load_scenes
    from deeper.generate.text import prompt_matches, train_reader

    train = load_scenes("scenes-cap", "train", n=600, digits=load_dataset("digits", "train"), cache=False)
    test = load_scenes("scenes-cap", "test", n=100, digits=load_dataset("digits", "test"), cache=False)
    reader = train_reader(train, epochs=12)
    own = prompt_matches(test.images.float() / 255, [c[0] for c in test.captions], reader, test.classes)
    other = [test.captions[(i + 1) % len(test.captions)][0] for i in range(len(test.captions))]
    swapped = prompt_matches(test.images.float() / 255, other, reader, test.classes)
    assert sum(own) >= 0.75 * len(own) and sum(swapped) <= 0.35 * len(own)  # measured: 87 and 0 of 100


def test_the_mnist_crop_is_20_pixels_of_ink_centred_in_28():
    from deeper.generate.text import mnist_crop

    img = torch.zeros(1, 64, 64)
    img[0, 10:30, 5:15] = 1  # ink 20 high, 10 wide
    crop = mnist_crop(img, [5, 10, 15, 30])
    rows, cols = crop[0].sum(1).nonzero().flatten(), crop[0].sum(0).nonzero().flatten()
    assert crop.shape == (1, 28, 28) and (rows.min(), rows.max()) == (4, 23) and 8 <= cols.min() <= 10


@pytest.fixture(scope="module")
def t2i_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("t2i") / "run"
    return out, fit(TrainConfig(**dry_run_options("text-to-image", figures=True), **QUIET, out=str(out)))


@pytest.mark.slow
def test_text_to_image_reports_the_prompt_match_and_the_readers_ceiling(t2i_run):
    out, result = t2i_run
    assert 0 <= result["test_prompt_match"] <= 1 and 0 <= result["reader_real"] <= 1
    assert "of the training scenes' crops, in the run) trained here on scenes-cap" in result["reader"]
    assert (out / "samples.png").exists() and len((out / "samples.txt").read_text().splitlines()) == 8


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "is a text-to-image model: say what to draw with --prompt"),
        (["--prompt", "a 3 left of a zebra"], "words the model never saw: zebra"),
        (["--prompt", "a 3", "--interpolate"], "use --trajectory for a diffusion model"),
    ],
)
def test_generate_with_a_prompt_and_its_errors(t2i_run, argv, message, tmp_path, capsys):
    code, _, err = run(capsys, "generate", "--weights", str(t2i_run[0]), "-o", str(tmp_path / "g.png"), *argv)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1
    code, stdout, _ = run(capsys, "generate", "--weights", str(t2i_run[0]), "--prompt", "a 3 to the left of a 7",
                          "-n", "3", "--steps", "2", "-o", str(tmp_path / "ok.png"), "--json")  # fmt: skip
    assert code == 0 and last_json(stdout)["prompt"] == "a 3 to the left of a 7"
    assert Image.open(tmp_path / "ok.png").size == (3 * 66 + 2, 66 + 2)
