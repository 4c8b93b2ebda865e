"""Image generation on the engine: GANs (task ``generate``: DCGAN, WGAN-GP) and diffusion (task ``diffusion``: DDPM).

Both train on an image dataset (MNIST, Fashion-MNIST, ...; ``--subset`` applies), unconditional
or class-conditional (``--task-arg conditional=true``), and are scored alike, honestly:

- **FID and KID** (torchmetrics) between generated samples and real test images in the
  feature space of a **classifier trained here** on the same dataset (``classifier``: a
  ``deeper train`` run of it; none given: a LeNet-5 trained for ``classifier_epochs`` inside
  the run, deterministically); no Inception weights exist here, and FIDs of different
  feature networks do not compare;
- the **floor**: the same FID between as many real training and real test images
  (``fid_floor`` in ``result.json``), so "5x the floor" reads on one scale;
- **class coverage**: the classifier's labels over the samples (``class_min``/``class_max``:
  the rarest and commonest class's share; ``test.classes``: every share).

Evaluation draws its noise from a generator of its own (the same for every evaluation),
so scores compare across epochs and the training random state is left alone.  The
validation split scores ``val_samples`` samples, the test ``test_samples``.

``generate`` (two optimizers taking turns): per batch the discriminator's step, then the
generator's (``dcgan``: the non-saturating loss); ``wgan-gp``: a critic step on every batch
with the gradient penalty (weight ``gp``, Gulrajani et al.), and a generator step every
``n_critic``-th batch.  ``diffusion``: DDPM's simple loss at a uniformly drawn step; evaluated
with the DDIM sampler of ``ddim_steps`` steps; conditional models drop the label with
probability ``p_uncond`` and sample with classifier-free guidance ``guidance``.

Figures (``finish``): ``samples.png`` (a grid; conditional: a row per class), ``interpolation.png``
(GAN: straight lines in the latent space) and ``trajectory.png`` (diffusion: the DDIM steps).
"""

from __future__ import annotations

import json
import math

import torch
from torch import nn

from deeper.errors import ConfigError
from deeper.generate.diffusion import Schedule, ddim_sample, guided
from deeper.generate.features import FeatureNet, load_classifier, train_classifier
from deeper.generate.losses import critic_with_penalty, d_loss_gan, d_loss_wgan, g_loss_gan, g_loss_wgan
from deeper.generate.scores import ClassShare, FeatureFID, FeatureKID
from deeper.tasks.base import Metric, Nets, StepOutput, Task, TaskOption, register_task
from deeper.train.build import BuildContext, Built
from deeper.train.parts import Parts

EVAL_SEED = {"val": 20_231, "test": 30_341}  # the evaluation noise, per split (apart from training's)

SCORES = (
    Metric("fid", higher_is_better=False, label="FID", fmt=".2f"),
    Metric("kid", higher_is_better=False, label="KID", fmt=".4f"),
    Metric("fid_floor", higher_is_better=False, label=""),
    Metric("class_min", label=""),
    Metric("class_max", higher_is_better=False, label=""),
)

COMMON_OPTIONS = {
    "conditional": TaskOption(False, "class-conditional (the label is an input of every network)"),
    "classifier": TaskOption(
        "",
        "feature network of the scores: a classifier run (folder or weights) of the "
        "same dataset ('': a LeNet-5 trained in the run)",
    ),  # fmt: skip
    "classifier_epochs": TaskOption(
        1, "epochs of the LeNet-5 trained in the run when no classifier is given", low=1, high=100
    ),  # fmt: skip
    "val_samples": TaskOption(1000, "samples scored after every epoch (validation)", low=2, high=10**6),
    "test_samples": TaskOption(
        10000, "samples scored at the end (test), and real images of the floor", low=2, high=10**6
    ),  # fmt: skip
    "figures": TaskOption(True, "draw samples.png and the interpolation or trajectory figure"),
}


class EvalSource:
    """Batches ``(real test images, their labels, real training images)`` of ``n`` images (the training images:
    the floor's reference, only where ``reference`` is given)."""

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, batch: int, reference: torch.Tensor | None
    ):
        self.images, self.labels, self.reference, self.batch = images, labels, reference, batch
        self.steps_per_epoch = math.ceil(len(images) / batch)
        self.dataset = images  # its length is the split's size in the engine's summary line

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        pass

    def __iter__(self):
        for i in range(0, len(self.images), self.batch):
            ref = self.reference[i : i + self.batch].float() / 255 if self.reference is not None else None
            yield self.images[i : i + self.batch].float() / 255, self.labels[i : i + self.batch], ref


class GenerationTask(Task):
    """What the GAN and diffusion tasks share: data, the feature network, the scores, the figures."""

    data_kind = "images"
    model_family = "generate"
    export = "G"
    automatic = False
    unit = "img"
    kinds: tuple[str, ...] = ()  # the models this task trains (``GanPair.loss`` or "diffusion")

    def __init__(self, **task_args):
        super().__init__(**task_args)
        self.features: FeatureNet | None = None
        self.num_classes = 10
        self._eval_gen: torch.Generator | None = None

    # ---- building what both share
    def prepare(self, ctx: BuildContext):
        from deeper.data import get_dataset_spec
        from deeper.models import get_model_entry
        from deeper.tasks.classify import split_data

        cfg, a = ctx.cfg, self.args
        get_model_entry(cfg.model)
        spec = get_dataset_spec(cfg.data)
        c, h, w = spec.image_shape
        if h != w:
            raise ConfigError(f"{cfg.data} images are {h}x{w}; the generators make square images")
        self.num_classes = spec.num_classes
        train, val, test = split_data(cfg)
        if a["classifier"]:
            self.features = load_classifier(a["classifier"], cfg.data, (c, h, w))
        else:
            self.features = train_classifier(
                train.images, train.labels, spec.num_classes, epochs=a["classifier_epochs"], seed=cfg.seed
            )
        self.features = self.features.to(ctx.device)
        train = train.to(ctx.device)
        bs = cfg.sampling.eval_batch_size
        nv = min(a["val_samples"], len(val)) if val is not None else 0
        nt = min(a["test_samples"], len(test), len(train))
        val_src = (
            EvalSource(val.images[:nv].to(ctx.device), val.labels[:nv].to(ctx.device), bs, None)
            if nv >= 2
            else None
        )
        test_src = EvalSource(test.images[:nt].to(ctx.device), test.labels[:nt].to(ctx.device), bs,
                              train.images[:nt])  # fmt: skip
        meta = {
            "dataset": cfg.data, "num_classes": spec.num_classes, "in_chans": c, "img_size": h,
            "classes": list(spec.classes), "conditional": a["conditional"],
            "feature_network": self.features.describe(cfg.data),
        }  # fmt: skip
        return spec, train, val_src, test_src, meta

    def model_kwargs(self, cfg, spec) -> dict:
        return {
            **dict(cfg.model_kwargs),
            "conditional": self.args["conditional"],
            "img_size": spec.image_shape[1],
        }

    def check_kind(self, cfg, kind: str) -> None:
        if kind not in self.kinds:
            raise ConfigError(f"model {cfg.model!r} ({kind}) is not trained by task {self.name!r}")

    # ---- scores
    def eval_metrics(self, split: str) -> dict:
        self._eval_gen = torch.Generator().manual_seed(EVAL_SEED.get(split, 1))
        d = self.features.num_features if self.features is not None else 1
        out = {
            "fid": FeatureFID(d), "kid": FeatureKID(d, seed=EVAL_SEED.get(split, 1)),
            "class_min": ClassShare(self.num_classes, "min"), "class_max": ClassShare(self.num_classes, "max"),
        }  # fmt: skip
        if split == "test":
            out["fid_floor"] = FeatureFID(d, fake_key="train")
            out["classes"] = Shares(self.num_classes)
        return out

    def noise(self, shape, device) -> torch.Tensor:
        return torch.randn(shape, generator=self._eval_gen).to(device)

    def labels_for(self, y: torch.Tensor) -> torch.Tensor | None:
        return y if self.args["conditional"] else None

    @torch.no_grad()
    def scored(self, fake: torch.Tensor, real: torch.Tensor, ref: torch.Tensor | None) -> StepOutput:
        """``fake`` in [-1, 1], ``real`` and ``ref`` in [0, 1]: the features every score reads."""
        f_fake, logits = self.features(((fake.float() + 1) / 2).clamp(0, 1))
        f_real, _ = self.features(real)
        preds = {"fake": f_fake, "logits": logits}
        if ref is not None:
            preds["train"] = self.features(ref.to(real.device))[0]
        return StepOutput(None, {}, real.shape[0], preds=preds, target={"real": f_real})

    def summarize(self, sums: dict[str, float], count: int) -> dict[str, float]:
        if not count:
            return {}
        out = {k: v / count for k, v in sums.items() if k not in ("loss_g", "g_count")}
        if sums.get("g_count"):
            out["loss_g"] = sums["loss_g"] / sums["g_count"]
        return out

    # ---- figures and extras
    def finish(self, run, run_dir, test: dict) -> dict:
        out = {"fid_floor": test.get("fid_floor"), "feature_network": run.metadata.get("feature_network")}
        if test.get("fid") is not None and test.get("fid_floor"):
            out["fid_over_floor"] = test["fid"] / test["fid_floor"]
        if self.args["figures"]:
            g = run.parts.exported
            meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in run.metadata.items()}
            device = next(g.parameters()).device
            labels = torch.arange(self.num_classes).repeat_interleave(8) if self.args["conditional"] else None
            images = sample(self, g, meta, 8 * self.num_classes if labels is not None else 64, labels=labels,
                            seed=0, device=device)  # fmt: skip
            save_grid(images, run_dir / "samples.png", nrow=8)
            out["figures"] = [str(run_dir / "samples.png")]
            extra = self.figure(g, meta, run_dir, device)
            if extra:
                out["figures"].append(extra)
        return out

    def figure(self, g, meta, run_dir, device) -> str | None:
        return None

    def load_model(self, path, name: str | None = None):
        return load_generator(path)


class Shares(ClassShare):
    """Every class's share of the generated samples (a list in ``result.json``'s ``test``)."""

    def compute(self) -> torch.Tensor:
        return self.shares()


# ----------------------------------------------------------------------------- GANs


@register_task
class GanTask(GenerationTask):
    name = "generate"
    description = (
        "GANs: DCGAN or WGAN-GP, unconditional or class-conditional (two optimizers taking turns); FID"
    )
    metrics = (
        Metric("loss_d", higher_is_better=False, label="D"),
        Metric("loss_g", higher_is_better=False, label="G"),
        *SCORES,
    )
    primary = "fid"
    kinds = ("gan", "wgan-gp")
    options = {
        **COMMON_OPTIONS,
        "n_critic": TaskOption(5, "wgan-gp: critic steps per generator step", low=1, high=100),
        "gp": TaskOption(10.0, "wgan-gp: weight of the gradient penalty", low=0.0, high=1e4),
        "real_label": TaskOption(
            1.0,
            "gan: the discriminator's target for real images (0.9: one-sided label "
            "smoothing, which keeps it from growing overconfident)",
            low=0.5,
            high=1.0,
        ),
    }
    dry_run = {
        "data": "digits", "model": "dcgan", "subset": 64, "batch_size": 16, "val_size": 0.2, "epochs": 2,
        "eval_batch_size": 32, "model_kwargs": {"width": 8, "d_width": 8, "latent": 8}, "lr": 0.0002,
        "task_args": {"conditional": True, "val_samples": 24, "test_samples": 32, "figures": False},
    }  # fmt: skip

    def build(self, ctx: BuildContext) -> Built:
        from deeper.models import create_model

        cfg = ctx.cfg
        spec, train, val_src, test_src, meta = self.prepare(ctx)
        kwargs = self.model_kwargs(cfg, spec)
        pair = create_model(cfg.model, num_classes=spec.num_classes, in_chans=spec.image_shape[0], **kwargs)
        self.check_kind(cfg, getattr(pair, "loss", "diffusion"))
        self.loss_kind, self.latent = pair.loss, pair.generator.latent
        if pair.loss != "gan" and self.args["real_label"] != 1.0:
            raise ConfigError(f"real_label is for the GAN loss; model {cfg.model!r} trains with {pair.loss}")
        from deeper.data import BatchLoader

        cl = ctx.channels_last(pair.discriminator)
        g, d = ctx.place(pair.generator, channels_last=cl), ctx.place(pair.discriminator, channels_last=cl)
        loader = BatchLoader(train, ctx.batch_size, shuffle=True, seed=cfg.seed, drop_last=True,
                             rank=ctx.rank, world_size=ctx.world_size, channels_last=cl)  # fmt: skip
        if len(loader) == 0:
            raise ConfigError(
                f"--batch-size {ctx.batch_size} is larger than the {len(train)} training images"
            )
        steps = loader.steps_per_epoch
        wgan = pair.loss == "wgan-gp"
        adam = cfg.optim.optimizer in ("adam", "adamw")
        betas = ({"beta1": 0.0, "beta2": 0.9} if wgan else {"beta1": 0.5}) if adam else {}  # the papers'
        g_steps = max(1, steps // self.args["n_critic"]) if wgan else steps
        opt_g, sched_g = ctx.optimizer(g.parameters(), g_steps, **betas)
        opt_d, sched_d = ctx.optimizer(d.parameters(), steps, **betas)
        parts = Parts({"G": g, "D": d}, {"D": opt_d, "G": opt_g}, {"D": sched_d, "G": sched_g}, export="G")
        meta.update({"model": cfg.model, "model_kwargs": json.dumps({k: v for k, v in kwargs.items() if k != "img_size"}),
                     "kind": pair.loss, "latent": pair.generator.latent})  # fmt: skip
        return Built(parts, loader, val_src, test_src, meta)

    def training_step(self, nets: Nets, batch, stepper, state) -> StepOutput:
        g, d = nets["G"], nets["D"]
        x, y = batch
        real = x * 2 - 1
        n = real.shape[0]
        labels = self.labels_for(y)
        z = torch.randn(n, self.latent, device=real.device)
        sums = {}
        if (
            self.loss_kind == "wgan-gp"
        ):  # the critic's step; real, generated and their mixtures in one forward
            g_turn = (state.global_step + 1) % self.args["n_critic"] == 0
            with stepper.autocast(), torch.set_grad_enabled(g_turn):
                fake = g(z, labels)
            with stepper.autocast():
                alpha = torch.rand(n, device=real.device)
                s_real, s_fake, gp = critic_with_penalty(d, real, fake, alpha, labels)
                loss_d = d_loss_wgan(s_real.float(), s_fake.float()) + self.args["gp"] * gp
            stepper.update("D", loss_d, state)
            sums["loss_d"] = loss_d.detach() * n
            if g_turn:  # the generator's step, every n_critic-th batch
                with stepper.autocast():
                    loss_g = g_loss_wgan(d(fake, labels).float())
                stepper.update("G", loss_g, state)
                sums.update(loss_g=loss_g.detach() * n, g_count=torch.tensor(float(n)))
            return StepOutput(loss_d.detach(), sums, n)
        # the discriminator's turn: real and generated images in batches of their own (as the paper's code:
        # batch norm never mixes them, so D cannot read one batch's statistics)
        with stepper.autocast():
            fake = g(z, labels)
            real_logits, fake_logits = d(real, labels).float(), d(fake.detach(), labels).float()
            loss_d = d_loss_gan(real_logits, fake_logits, self.args["real_label"])
        stepper.update("D", loss_d, state)
        with stepper.autocast():  # the generator's turn: make the discriminator say "real"
            loss_g = g_loss_gan(d(fake, labels).float())
        stepper.update("G", loss_g, state)
        sums = {
            "loss_d": loss_d.detach() * n,
            "loss_g": loss_g.detach() * n,
            "g_count": torch.tensor(float(n)),
        }
        return StepOutput(loss_g.detach(), sums, n)

    @torch.no_grad()
    def evaluation_step(self, nets: Nets, batch) -> StepOutput:
        real, y, ref = batch
        g = nets["G"]
        fake = g(self.noise((real.shape[0], g.latent), real.device), self.labels_for(y))
        return self.scored(fake, real, ref)

    def figure(self, g, meta, run_dir, device) -> str:
        images = interpolate(g, rows=8, steps=10, seed=1, device=device)
        save_grid(images, run_dir / "interpolation.png", nrow=10)
        return str(run_dir / "interpolation.png")


# ----------------------------------------------------------------------------- diffusion


@register_task
class DiffusionTask(GenerationTask):
    name = "diffusion"
    description = "DDPM with a small U-Net, DDIM sampling, classifier-free guidance; FID"
    metrics = (Metric("loss", higher_is_better=False), *SCORES)
    primary = "fid"
    model_family = "diffusion"
    kinds = ("diffusion",)
    options = {
        **COMMON_OPTIONS,
        "timesteps": TaskOption(
            1000, "diffusion steps T (the paper: 1000, linear betas 1e-4 to 0.02)", low=2, high=10000
        ),  # fmt: skip
        "ddim_steps": TaskOption(50, "DDIM steps of the sampler that is scored", low=1, high=10000),
        "guidance": TaskOption(
            2.0, "classifier-free guidance scale of conditional sampling (1: none)", low=0.0, high=100.0
        ),  # fmt: skip
        "p_uncond": TaskOption(0.1, "conditional: chance of training without the label", low=0.0, high=1.0),
        "val_samples": TaskOption(500, "samples scored after every epoch (validation)", low=2, high=10**6),
        "test_samples": TaskOption(
            2000, "samples scored at the end (test), and real images of the floor", low=2, high=10**6
        ),  # fmt: skip
    }
    dry_run = {
        "data": "digits", "model": "ddpm-unet", "subset": 48, "batch_size": 16, "val_size": 0.2, "epochs": 2,
        "eval_batch_size": 32, "model_kwargs": {"width": 8, "mults": [1, 2], "attention": False}, "lr": 0.001,
        "task_args": {"conditional": True, "val_samples": 16, "test_samples": 24, "figures": False,
                      "timesteps": 50, "ddim_steps": 3},
    }  # fmt: skip

    def build(self, ctx: BuildContext) -> Built:
        from deeper.data import BatchLoader
        from deeper.models import create_model

        cfg, a = ctx.cfg, self.args
        spec, train, val_src, test_src, meta = self.prepare(ctx)
        kwargs = self.model_kwargs(cfg, spec)
        net = create_model(cfg.model, num_classes=spec.num_classes, in_chans=spec.image_shape[0], **kwargs)
        self.schedule = Schedule(a["timesteps"])
        net = ctx.place(net)
        loader = BatchLoader(train, ctx.batch_size, shuffle=True, seed=cfg.seed,
                             rank=ctx.rank, world_size=ctx.world_size)  # fmt: skip
        opt, sched = ctx.optimizer(net.parameters(), loader.steps_per_epoch)
        meta.update({
            "model": cfg.model, "kind": "diffusion", "timesteps": a["timesteps"], "ddim_steps": a["ddim_steps"],
            "guidance": a["guidance"], "model_kwargs": json.dumps({k: v for k, v in kwargs.items() if k != "img_size"}),
        })  # fmt: skip
        return Built(Parts.single(net, opt, sched, name="G"), loader, val_src, test_src, meta)

    def training_step(self, nets: Nets, batch, stepper, state) -> StepOutput:
        net = nets["G"]
        x, y = batch
        x0 = x * 2 - 1
        n = x0.shape[0]
        t = torch.randint(0, self.schedule.steps, (n,), device=x0.device)
        noise = torch.randn_like(x0)
        labels = self.labels_for(y)
        if labels is not None:  # classifier-free guidance: sometimes no label
            drop = torch.rand(n, device=x0.device) < self.args["p_uncond"]
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        with stepper.autocast():
            pred = net(self.schedule.q_sample(x0, t, noise), t, labels)
            loss = (pred.float() - noise).square().mean()
        stepper.update("G", loss, state)
        return StepOutput(loss.detach(), {"loss": loss.detach() * n}, n)

    @torch.no_grad()
    def evaluation_step(self, nets: Nets, batch) -> StepOutput:
        real, y, ref = batch
        net = nets["G"]
        x_T = self.noise(real.shape, real.device)
        eps = guided(net, self.labels_for(y), scale=self.args["guidance"])
        fake = ddim_sample(eps, self.schedule, x_T, self.args["ddim_steps"])
        return self.scored(fake, real, ref)

    def figure(self, g, meta, run_dir, device) -> str:
        steps: list = []
        labels = torch.arange(min(8, self.num_classes), device=device) if self.args["conditional"] else None
        sample(self, g, meta, 8, labels=labels, seed=2, device=device, trajectory=steps)
        keep = steps[:: max(1, len(steps) // 10)][:9] + [steps[-1]]
        grid = torch.stack(keep, 1).flatten(0, 1)  # a row per sample, the steps left to right
        save_grid(grid, run_dir / "trajectory.png", nrow=len(keep))
        return str(run_dir / "trajectory.png")


# ----------------------------------------------------------------------------- using the weights


def load_generator(path) -> tuple[nn.Module, dict]:
    """``(generator, U-Net or layout model, metadata)`` of a ``generate``, ``diffusion``, ``text-to-image`` or
    ``text-layout`` run's weights."""
    from deeper.models import create_model
    from deeper.models.weights import load_weights, meta_int

    state, meta = load_weights(path)
    kind = meta.get("kind")
    if kind not in ("gan", "wgan-gp", "diffusion", "layout"):
        raise ConfigError(f"{path} holds no generator (weights of task {meta.get('task', 'classify')!r})")
    try:
        kwargs = json.loads(meta.get("model_kwargs", "{}"))
    except ValueError:
        raise ConfigError(f"{path}: unreadable model_kwargs in the file's metadata") from None
    net = create_model(str(meta["model"]), num_classes=meta_int(meta, "num_classes", path) or 10,
                       in_chans=meta_int(meta, "in_chans", path) or 1, img_size=meta_int(meta, "img_size", path) or 28,
                       **kwargs)  # fmt: skip
    if kind in ("gan", "wgan-gp"):
        net = net.generator
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError(
            f"{path}: the weights do not fit {meta['model']} ({str(e).splitlines()[0]})"
        ) from None
    return net.eval(), meta


@torch.no_grad()
def sample(task_or_meta, g: nn.Module, meta: dict, n: int, *, labels: torch.Tensor | None = None,
           seed: int = 0, device=None, steps: int | None = None, guidance: float | None = None,
           trajectory: list | None = None, prompts: list[str] | None = None) -> torch.Tensor:  # fmt: skip
    """``n`` images in [0, 1] from a generator or a diffusion U-Net (its metadata says which), from ``seed``."""
    device = device or next(g.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    g = g.eval()
    c, size = int(meta.get("in_chans", 1)), int(meta.get("img_size", 28))
    if labels is not None:
        labels = labels.to(device)
        n = len(labels)
    if prompts is not None:
        n = len(prompts)
    tokens = None if prompts is None else prompt_tokens(meta, prompts).to(device)
    if meta.get("kind") == "layout":
        return g.generate(tokens, generator=gen, temperature=float(meta.get("temperature", 1.0)))[0].cpu()
    if meta.get("kind") == "diffusion":
        schedule = Schedule(int(meta.get("timesteps", 1000)))
        x_T = torch.randn((n, c, size, size), generator=gen).to(device)
        scale = float(meta.get("guidance", 1.0)) if guidance is None else guidance
        eps = guided(g, labels, tokens, scale=scale)
        out = ddim_sample(eps, schedule, x_T, steps or int(meta.get("ddim_steps", 50)), trajectory=trajectory)
        if trajectory is not None:
            trajectory[:] = [((x.cpu() + 1) / 2).clamp(0, 1) for x in trajectory]
    else:
        z = torch.randn((n, g.latent), generator=gen).to(device)
        out = g(z, labels)
    return ((out.float().cpu() + 1) / 2).clamp(0, 1)


def prompt_tokens(meta: dict, prompts: list[str]) -> torch.Tensor:
    """Text to image: the captions as token ids of the weights' vocabulary (a word it never saw: one line)."""
    from deeper.generate.text import TextVocab

    vocab = TextVocab.from_json(meta.get("vocab", "null"))
    unknown = sorted({w for p in prompts for w in vocab.unknown(p)})
    if unknown:
        raise ConfigError(f"the prompt has words the model never saw: {', '.join(unknown)}")
    return vocab.encode(prompts, int(meta.get("caption_length", 0)) or None)


@torch.no_grad()
def interpolate(g: nn.Module, *, rows: int = 8, steps: int = 10, seed: int = 0, device=None,
                labels: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """GAN: ``rows`` straight lines between two latent points, ``steps`` images each (spherical would bend)."""
    device = device or next(g.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(rows, g.latent, generator=gen), torch.randn(rows, g.latent, generator=gen)
    w = torch.linspace(0, 1, steps)
    z = (a[:, None] * (1 - w[None, :, None]) + b[:, None] * w[None, :, None]).flatten(0, 1).to(device)
    if g.conditional and labels is None:
        labels = torch.arange(rows).remainder(g.num_classes).repeat_interleave(steps)
    out = g.eval()(z, None if labels is None else labels.to(device))
    return ((out.float().cpu() + 1) / 2).clamp(0, 1)


def save_grid(images: torch.Tensor, path, nrow: int = 8) -> None:
    from torchvision.utils import save_image

    save_image(images, str(path), nrow=nrow, padding=2, pad_value=0.5)
