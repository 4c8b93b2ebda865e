"""SRGAN (Ledig et al. 2017; task ``srgan``): SRResNet trained against a discriminator, with a perceptual loss.

Each step the discriminator ``D`` learns to tell the original patches (1) from the generator's
(0), then the generator ``G`` (an SRResNet, usually started from a ``superres`` run's weights:
``init``) lowers ``perceptual * |phi(G(x)) - phi(y)|^2 / |phi(y)|^2 + pixel * MSE +
adversarial * BCE(D(G(x)), 1)`` where ``phi`` is a layer of a feature network (random, or
trained here on the photographs' patches; no ImageNet VGG exists here).  Scored as
``superres``: the PSNR cost of the sharper textures is the point of the comparison.
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from deeper.errors import ConfigError
from deeper.image2image.metrics import psnr
from deeper.image2image.style import describe_features, feature_net
from deeper.image2image.superres import sr_inputs
from deeper.tasks.base import Metric, Nets, StepOutput, TaskOption, register_task
from deeper.tasks.superres import SR_METRICS, SR_OPTIONS, SuperResolutionTask, make_sources, sr_model
from deeper.train.build import BuildContext, Built
from deeper.train.parts import Parts


@register_task
class SrganTask(SuperResolutionTask):
    name = "srgan"
    description = (
        "SRGAN: SRResNet against a discriminator with a perceptual loss (two optimizers taking turns)"
    )
    metrics = (
        Metric("loss_d", higher_is_better=False, label="D"),
        Metric("loss_g", higher_is_better=False, label="G"),
        *SR_METRICS,
    )
    primary = "psnr"
    export = "G"
    automatic = False
    options = {
        **SR_OPTIONS,
        "scale": TaskOption(4, "upscaling factor", choices=(2, 3, 4, 8)),
        "patch": TaskOption(96, "side of the high-resolution training patches (a multiple of the scale)", low=4, high=1024),
        "patches": TaskOption(2048, "training patches per epoch", low=1, high=10**8),
        "init": TaskOption("", "weights of a superres SRResNet to start the generator from ('' : random)"),
        "features": TaskOption("random", "feature network of the perceptual loss: random or a vgg-features weights file"),
        "layer": TaskOption("relu3_1", "its layer (relu1_1 ... relu4_2)"),
        "width": TaskOption(16, "width of a random feature network", low=1, high=512),
        "perceptual": TaskOption(1.0, "weight of the perceptual loss", low=0.0, high=1e6),
        "pixel": TaskOption(0.0, "weight of the pixel MSE", low=0.0, high=1e6),
        "adversarial": TaskOption(1e-3, "weight of the adversarial loss", low=0.0, high=1e6),
        "d_width": TaskOption(32, "discriminator width (paper: 64)", low=1, high=512),
    }  # fmt: skip
    dry_run = {
        "data": "photos", "model": "srresnet", "model_kwargs": {"blocks": 1, "width": 4}, "batch_size": 4,
        "epochs": 2, "lr": 0.001,
        "task_args": {"patch": 16, "patches": 16, "eval_crop": 32, "width": 4, "d_width": 2, "figures": False},
    }  # fmt: skip

    def build(self, ctx: BuildContext) -> Built:
        from deeper.models.image2image.sr import Discriminator, SRResNet

        cfg, a = ctx.cfg, self.args
        if a["init"]:
            g, meta0 = self.load_model(a["init"])
            if int(meta0.get("scale", self.scale)) != self.scale:
                raise ConfigError(f"{a['init']} upscales x{meta0.get('scale')}, the run x{self.scale}")
            raw = meta0.get("model_kwargs", "{}")
            kwargs = json.loads(raw) if isinstance(raw, str) else dict(raw)
            model_name = str(meta0.get("model"))
        else:
            g, kwargs = sr_model(cfg, self.scale)
            model_name = cfg.model
        if not isinstance(g, SRResNet):
            raise ConfigError(f"the SRGAN generator is an srresnet, not {model_name!r}")
        self.upsampled_input = False
        self.phi = feature_net(a["features"], seed=0, width=a["width"]).to(ctx.device)
        self.phi.features(
            torch.zeros(1, 1, 16, 16, device=ctx.device), (a["layer"],)
        )  # a bad layer fails now
        cl = ctx.channels_last(g)
        train, val, test, patch = make_sources(self, ctx, "y", self.scale, a["patch"], channels_last=cl)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 7)
            d = Discriminator(in_chans=1, width=a["d_width"])
        g, d = ctx.place(g, channels_last=cl), ctx.place(d, channels_last=cl)
        steps = train.steps_per_epoch
        opt_g, sched_g = ctx.optimizer(g.parameters(), steps, beta1=0.9)
        opt_d, sched_d = ctx.optimizer(d.parameters(), steps, beta1=0.9)
        parts = Parts({"G": g, "D": d}, {"D": opt_d, "G": opt_g}, {"D": sched_d, "G": sched_g}, export="G")
        meta = {
            **self.metadata(cfg, kwargs, train, patch), "model": model_name,
            "features": describe_features(a["features"], 0, a["width"]), "init": a["init"],
        }  # fmt: skip
        return Built(parts, train, val, test, meta)

    def training_step(self, nets: Nets, hr: torch.Tensor, stepper, state) -> StepOutput:
        g, d, a = nets["G"], nets["D"], self.args
        n = hr.shape[0]
        lr, _ = sr_inputs(hr, self.scale)
        ones, zeros = torch.ones(n, 1, device=hr.device), torch.zeros(n, 1, device=hr.device)
        with stepper.autocast():  # the discriminator: originals 1, generated 0
            sr = g(lr)
            both = d(torch.cat([hr, sr.detach()]))
            loss_d = F.binary_cross_entropy_with_logits(both, torch.cat([ones, zeros])) * 2
        stepper.update("D", loss_d, state)
        with stepper.autocast():  # the generator: look like an original, in features and to D
            layer = a["layer"]
            f_sr = self.phi.features(sr, (layer,))[layer]
            with torch.no_grad():
                f_hr = self.phi.features(hr, (layer,))[layer]
            perceptual = (f_sr - f_hr).square().mean() / f_hr.square().mean().clamp(min=1e-12)
            adv = F.binary_cross_entropy_with_logits(d(sr), ones)
            loss_g = a["perceptual"] * perceptual + a["pixel"] * F.mse_loss(sr, hr) + a["adversarial"] * adv
        stepper.update("G", loss_g, state)
        sums = {"loss_d": loss_d.detach() * n, "loss_g": loss_g.detach() * n,
                "psnr": psnr(sr.detach().float().clamp(0, 1), hr).sum()}  # fmt: skip
        return StepOutput(loss_g.detach(), sums, n)

    def evaluation_step(self, nets: Nets, hr: torch.Tensor) -> StepOutput:
        out = super().evaluation_step({"net": nets["G"], "G": nets["G"]}, hr)
        out.sums = {}  # the losses of a GAN step are training figures; evaluation scores the images
        return out

    def summarize(self, sums: dict[str, float], count: int) -> dict[str, float]:
        return {k: v / count for k, v in sums.items()} if count else {}
