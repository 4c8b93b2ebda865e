"""Learning-rate schedules: their shapes, warm-up in front of any, plateau on the validation loss, resume."""

import math

import pytest
import torch
from torch import nn

from deeper.errors import ConfigError
from deeper.train import TrainConfig, fit
from deeper.train.schedule import Plateau, PlateauFeed, Warmup, create_schedule, list_schedules


def make_opt(lr=0.1, kind="sgd"):
    p = [nn.Parameter(torch.zeros(1))]
    return torch.optim.SGD(p, lr=lr) if kind == "sgd" else torch.optim.Adam(p, lr=lr)


def lrs(name, total=100, *, steps_per_epoch=10, warmup_steps=0, lr=0.1, **options):
    opt = make_opt(lr)
    sched = create_schedule(
        name, opt, total, steps_per_epoch=steps_per_epoch, warmup_steps=warmup_steps, **options
    )
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return out


def test_the_schedules_of_the_issue_are_registered():
    assert {"constant", "step", "exponential", "cosine", "onecycle", "plateau"} <= set(list_schedules())


def test_default_shapes_and_a_misspelt_name():
    assert set(lrs("constant", lr=0.01)) == {0.01}
    one = lrs("onecycle", lr=0.01)
    peak = max(range(100), key=one.__getitem__)
    assert 20 <= peak <= 30 and one[peak] == pytest.approx(0.01) and one[0] < 0.001 and one[-1] < 1e-5
    with pytest.raises(ConfigError, match="did you mean cosine"):
        create_schedule("cosin", None, 10)


def test_tiny_runs_get_a_valid_schedule():
    for name in ("onecycle", "cosine", "step", "exponential"):
        out = lrs(name, 2, steps_per_epoch=1, lr=0.01)
        assert all(0 <= v <= 0.01 + 1e-12 for v in out) and len(out) == 2
    # a warm-up of exactly one step (pct_start x total = 1) is a 0/0 inside torch's OneCycleLR
    for total, pct in ((4, 0.25), (10, 0.1), (20, 0.05)):
        out = lrs("onecycle", total, steps_per_epoch=2, lr=0.01, pct_start=pct)
        assert all(0 <= v <= 0.01 + 1e-12 for v in out) and max(out) > 0.005


def test_step_multiplies_by_gamma_every_n_epochs():
    out = lrs("step", 100, steps_per_epoch=10, every=3, gamma=0.5)
    for step, lr in enumerate(out):
        assert lr == pytest.approx(0.1 * 0.5 ** (step // 30)), step
    default = lrs("step", 90)  # every third of the run, gamma 0.1
    assert (
        default[29] == pytest.approx(0.1)
        and default[30] == pytest.approx(0.01)
        and default[60] == pytest.approx(0.001)
    )


def test_exponential_decays_by_gamma_per_epoch_and_reaches_final():
    out = lrs("exponential", 100, steps_per_epoch=10, gamma=0.8)
    assert out[10] / out[0] == pytest.approx(0.8) and out[55] / out[45] == pytest.approx(0.8)
    default = lrs("exponential", 100, steps_per_epoch=10)
    assert default[-1] == pytest.approx(0.1 * 0.01 ** (99 / 100))
    assert all(a > b for a, b in zip(default, default[1:]))


def test_cosine_goes_down_to_final():
    out = lrs("cosine", 100, final=0.1)
    assert out[0] == pytest.approx(0.1) and out[50] == pytest.approx(0.1 * (0.1 + 0.9 * 0.5))
    assert min(out) > 0.01 - 1e-12 and all(a >= b for a, b in zip(out, out[1:]))


def test_onecycle_options():
    out = lrs("onecycle", 100, pct_start=0.5, div=10)
    peak = max(range(100), key=out.__getitem__)
    assert 45 <= peak <= 55 and out[0] == pytest.approx(0.01)


@pytest.mark.parametrize("name", ["constant", "step", "cosine", "onecycle", "exponential"])
def test_linear_warmup_in_front_of_any_schedule(name):
    total, warm = 100, 20
    plain = lrs(name, total - warm)
    warmed = lrs(name, total, warmup_steps=warm)
    first = plain[0]
    for s in range(warm):
        assert warmed[s] == pytest.approx(first * (s + 1) / (warm + 1)), s
    assert warmed[warm:] == pytest.approx(plain)  # then the schedule runs over the remaining steps


def test_warmup_must_be_shorter_than_the_run():
    with pytest.raises(ConfigError, match="warm-up"):
        create_schedule("cosine", make_opt(), 10, warmup_steps=10)


def test_plateau_divides_the_lr_after_patience_epochs_without_improvement():
    opt = make_opt(0.1)
    sched = create_schedule("plateau", opt, 100, factor=0.5, patience=1)
    assert isinstance(sched, Plateau)
    for _ in range(50):
        sched.step()  # training steps do nothing
    assert opt.param_groups[0]["lr"] == 0.1
    seen = []
    for val_loss in [1.0, 0.8, 0.9, 0.95, 0.7, 0.75, 0.76]:
        sched.observe(val_loss)
        seen.append(opt.param_groups[0]["lr"])
    # two epochs without improvement (patience 1) -> halve; improvement resets the count
    assert seen == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])


def test_plateau_callback_feeds_the_validation_loss_and_waits_for_the_warmup():
    opt = make_opt(0.1)
    sched = create_schedule("plateau", opt, 100, warmup_steps=10, factor=0.5, patience=0)
    run = type("R", (), {"schedulers": {"net": sched}})()
    feed = PlateauFeed()
    feed.on_epoch_end(run, None, {"val_loss": 1.0})
    feed.on_epoch_end(run, None, {"val_loss": 2.0})
    assert sched.inner.scheduler.num_bad_epochs == 0  # still warming up: not fed
    for _ in range(10):
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    feed.on_epoch_end(run, None, {"val_loss": 1.0})
    feed.on_epoch_end(run, None, {"val_loss": 2.0, "train_loss": 0.1})
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


@pytest.mark.parametrize(
    "name, options", [("cosine", {}), ("onecycle", {}), ("step", {"every": 1}), ("plateau", {})]
)
def test_schedule_state_resumes_exactly(name, options):
    def make():
        opt = make_opt(0.1, "adam")
        return opt, create_schedule(name, opt, 60, steps_per_epoch=10, warmup_steps=15, **options)

    opt, sched = make()
    straight = []
    for i in range(60):
        straight.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        if name == "plateau" and i % 10 == 9:
            sched.inner.observe(1.0)
    opt, sched = make()
    for i in range(25):
        opt.step()
        sched.step()
        if name == "plateau" and i % 10 == 9:
            sched.inner.observe(1.0)
    saved_opt, saved = opt.state_dict(), sched.state_dict()
    torch.save(saved, buf := __import__("io").BytesIO())
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)  # the checkpoint format
    opt, sched = make()
    opt.load_state_dict(saved_opt)
    sched.load_state_dict(saved)
    resumed = []
    for i in range(25, 60):
        resumed.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        if name == "plateau" and i % 10 == 9:
            sched.inner.observe(1.0)
    assert isinstance(sched, Warmup)
    assert resumed == pytest.approx(straight[25:])


def test_schedule_option_errors():
    with pytest.raises(ConfigError, match="its options: every, gamma"):
        create_schedule("step", make_opt(), 10, patience=3)
    with pytest.raises(ConfigError, match="must be a number"):
        create_schedule("cosine", make_opt(), 10, final="low")
    with pytest.raises(ConfigError, match="gamma must be in"):
        create_schedule("exponential", make_opt(), 10, gamma=2.0)


def test_plateau_and_warmup_through_fit(tmp_path):
    cfg = TrainConfig(
        data="digits", epochs=3, subset=128, schedule="plateau", schedule_kwargs={"patience": 0, "factor": 0.5},
        warmup=0.5, lr=1e-6, optimizer="sgd", tensorboard=False, progress=False, out=str(tmp_path / "r"),
    )  # fmt: skip
    fit(cfg)
    rows = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    lr = [float(r.split(",")[header.index("lr")]) for r in rows[1:]]
    val = [float(r.split(",")[header.index("val_loss")]) for r in rows[1:]]
    # epoch 1 ends after the warm-up at lr; from then on the lr of epoch i + 1 is that of epoch i,
    # halved when the validation loss of epoch i was no better than the best before it (patience 0)
    # (the lr is tiny, so the loss hardly moves: the plateau must act)
    assert lr[0] == pytest.approx(1e-6) and lr[1] == pytest.approx(1e-6) and lr[2] == pytest.approx(5e-7)
    for i in range(1, len(val) - 1):
        improved = val[i] < min(val[:i]) * (1 - 1e-4)
        assert math.isclose(lr[i + 1], lr[i] if improved else lr[i] * 0.5, rel_tol=1e-9), i
