"""Style transfer: optimising an image (task ``style``, Gatys et al.) and a feed-forward network (``style-fast``).

``style``: the image is the run's one part (:class:`ImageParam`, a parameter holding the
pixels) with its own optimizer, L-BFGS (strong Wolfe line search) or Adam; each step lowers
``content_weight * content loss + style_weight * style loss`` measured by the feature network
(:mod:`deeper.image2image.style`).  Evaluation measures the same losses, the held-out style
loss of a second network (the referee) relative to the starting image's, and the SSIM of the
result to the content image.  ``deeper stylize`` runs it and writes the image.

``style-fast`` (Johnson et al.): a ``style-net`` learns one style on random crops of the
training photographs with the same losses; the held-out photographs are stylised and scored;
``deeper predict`` stylises image files with its weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deeper.errors import ConfigError
from deeper.image2image.common import output_path
from deeper.image2image.metrics import ssim
from deeper.image2image.style import STYLE_LAYERS, StyleLoss, describe_features, feature_net
from deeper.tasks.base import Metric, Nets, StepOutput, Task, TaskOption, register_task
from deeper.train.build import BuildContext, Built
from deeper.train.parts import Parts

STYLE_METRICS = (
    Metric("loss", higher_is_better=False),
    Metric("content", higher_is_better=False, label="content", fmt=".3f"),
    Metric("style", higher_is_better=False, label="style", fmt=".4f"),
    Metric("heldout_style", higher_is_better=False, label="held-out style", fmt=".4f"),
    Metric("content_ssim", label="SSIM", fmt=".3f"),
)
FEATURE_OPTIONS = {
    "features": TaskOption("random", "feature network optimised against: random, or a vgg-features weights file"),
    "referee": TaskOption("random", "second network that scores the result: random (another seed) or a weights file"),
    "width": TaskOption(16, "width of the random feature networks' first stage", low=1, high=512),
    "content_weight": TaskOption(1.0, "weight of the content loss", low=0.0, high=1e9),
    "style_weight": TaskOption(20.0, "weight of the (relative) style loss", low=0.0, high=1e9),
}  # fmt: skip
#: the seeds of the random optimised-against and referee networks
FEATURE_SEED, REFEREE_SEED = 0, 1


def load_picture(spec: str, size: int, *, what: str) -> torch.Tensor:
    """An RGB image (1, 3, H, W) in [0, 1] whose longer side is ``size``: a bundled photograph's name or a file."""
    from deeper.data.photos import SPLITS, load_photos
    from deeper.image2image.images import read_image

    if not spec:
        raise ConfigError(f"give the {what} image (a file, or a bundled photograph such as astronaut)")
    names = {n for split in SPLITS.values() for n in split}
    if spec in names:
        x = load_photos(names=(spec,)).images[0][None].float() / 255
    else:
        x = read_image(spec, min_size=16)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    h, w = x.shape[-2:]
    factor = size / max(h, w)
    if abs(factor - 1) > 1e-6:
        x = F.interpolate(x, size=(max(1, round(h * factor)), max(1, round(w * factor))), mode="bicubic",
                          antialias=True, align_corners=False)  # fmt: skip
    if min(x.shape[-2:]) < 16:
        raise ConfigError(f"the {what} image is {w}x{h}: at {size} px its short side is under 16 pixels")
    return x.clamp(0, 1).contiguous()


class ImageParam(nn.Module):
    """An image as a parameter (1, C, H, W); the forward pass gives it clamped to [0, 1]."""

    def __init__(self, init: torch.Tensor):
        super().__init__()
        self.image = nn.Parameter(init.detach().clone())

    def forward(self) -> torch.Tensor:
        return self.image.clamp(0, 1)


class ClosureLBFGS(torch.optim.LBFGS):
    """L-BFGS driven by the engine's stepper: :meth:`step` takes no closure; the task sets
    :attr:`closure` (a re-evaluation of the loss with its gradient) before each update, and
    the first evaluation reuses the loss the stepper has just back-propagated."""

    closure = None

    def step(self, closure=None):
        first = [True]
        loss = self.loss_now

        def evaluate():
            if first[0]:
                first[0] = False
                return loss
            return self.closure()

        return super().step(evaluate)


class Steps:
    """A source of ``steps`` empty batches per epoch (the image is the part, there is no data)."""

    def __init__(self, steps: int):
        self.steps_per_epoch = steps

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self._skip = skip_batches

    def __iter__(self):
        for _ in range(getattr(self, "_skip", 0), self.steps_per_epoch):
            yield 0


@register_task
class StyleTask(Task):
    name = "style"
    description = "style transfer by optimising an image (Gatys et al.): content and Gram-matrix style losses"
    metrics = STYLE_METRICS
    primary = "loss"
    export = "image"
    unit = "steps"
    automatic = False
    options = {
        "content": TaskOption("", "content image: a file or a bundled photograph (astronaut, chelsea, ...)"),
        "style": TaskOption("", "style image: a file or a bundled photograph"),
        "size": TaskOption(256, "longer side of the image, pixels", low=16, high=2048),
        "steps": TaskOption(50, "optimizer steps per epoch", low=1, high=100_000),
        "solver": TaskOption("lbfgs", "lbfgs (strong Wolfe line search) or adam", choices=("lbfgs", "adam")),
        "image_lr": TaskOption(0.0, "step size (0: lbfgs 1, adam 0.02)", low=0.0, high=100.0),
        "init": TaskOption("content", "starting image: content or noise", choices=("content", "noise")),
        **FEATURE_OPTIONS,
    }  # fmt: skip
    dry_run = {
        "batch_size": 1, "epochs": 2,
        "task_args": {"content": "coins", "style": "brick", "size": 32, "steps": 3, "width": 4},
    }  # fmt: skip

    def build(self, ctx: BuildContext) -> Built:
        cfg, a = ctx.cfg, self.args
        dev = ctx.device
        content = load_picture(a["content"], a["size"], what="content").to(dev)
        style = load_picture(a["style"], a["size"], what="style").to(dev)
        self.setup(content, style, dev)
        if a["init"] == "content":
            init = content
        else:
            init = torch.rand(content.shape, generator=torch.Generator().manual_seed(cfg.seed)).to(dev)
        image = ImageParam(init)
        self.initial_referee = float(self.referee.style(init))
        lr = a["image_lr"] or (1.0 if a["solver"] == "lbfgs" else 0.02)
        if a["solver"] == "lbfgs":
            opt = ClosureLBFGS(
                image.parameters(), lr=lr, max_iter=1, history_size=50, line_search_fn="strong_wolfe"
            )
            sched = None
        else:
            opt, sched = ctx.optimizer(image.parameters(), a["steps"], name="adam", lr=lr, weight_decay=0.0,
                                       schedule="constant")  # fmt: skip
        parts = Parts({"image": image}, {"image": opt}, {"image": sched} if sched else {}, export="image")
        meta = {
            "model": "style-image", "dataset": f"{a['content']} in the style of {a['style']}",
            "features": describe_features(a["features"], FEATURE_SEED, a["width"]),
            "referee": describe_features(a["referee"], REFEREE_SEED, a["width"]),
            "size": list(content.shape[-2:]),
        }  # fmt: skip
        return Built(parts, Steps(a["steps"]), Steps(1), Steps(1), meta)

    def setup(self, content: torch.Tensor, style: torch.Tensor, device) -> None:
        a = self.args
        self.content = content
        self.losses = StyleLoss(
            feature_net(a["features"], seed=FEATURE_SEED, width=a["width"]).to(device), style
        )
        self.referee = StyleLoss(
            feature_net(a["referee"], seed=REFEREE_SEED, width=a["width"]).to(device), style
        )
        self.content_feats = self.losses.content_features(content)
        self.referee_content = self.referee.content_features(content)

    def objective(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        content, style = self.losses(image, self.content_feats)
        a = self.args
        return a["content_weight"] * content.sum() + a["style_weight"] * style.sum(), content, style

    def training_step(self, nets: Nets, batch, stepper, state) -> StepOutput:
        part = nets["image"]
        opt = stepper.optimizers["image"]
        with stepper.autocast():
            loss, content, style = self.objective(part())
        if isinstance(opt, ClosureLBFGS):

            def closure():
                opt.zero_grad()
                with torch.enable_grad():
                    again = self.objective(part())[0]
                    again.backward()
                return again

            opt.closure, opt.loss_now = closure, loss.detach()
        stepper.update("image", loss, state)
        return StepOutput(loss.detach(), {"loss": loss.detach(), "content": content.detach().sum(),
                                          "style": style.detach().sum()}, 1)  # fmt: skip

    def evaluation_step(self, nets: Nets, batch) -> StepOutput:
        image = nets["image"]()
        loss, content, style = self.objective(image)
        held = self.referee.style(image).sum() / max(self.initial_referee, 1e-12)
        sums = {"loss": loss, "content": content.sum(), "style": style.sum(), "heldout_style": held,
                "content_ssim": ssim(image, self.content).sum()}  # fmt: skip
        return StepOutput(None, sums, 1)

    def finish(self, run, run_dir, test: dict) -> dict:
        from deeper.image2image.figures import image_grid
        from deeper.image2image.images import write_image

        image = run.parts.for_eval()["image"]().detach()
        out = write_image(Path(run_dir) / "stylized.png", image)
        a = self.args
        style = load_picture(a["style"], a["size"], what="style")
        image_grid([[("content", self.content), ("style", style), ("result", image)]], Path(run_dir) / "style.png",
                   title=f"held-out style loss x{test.get('heldout_style', math.nan):.3f} of the start, "
                   f"content SSIM {test.get('content_ssim', math.nan):.2f}", cell=3.0)  # fmt: skip
        drop = 1 / test["heldout_style"] if test.get("heldout_style") else None
        return {"output": out, "heldout_style_drop": drop}

    def load_model(self, path, name: str | None = None):
        raise ConfigError(
            "a style run's weights are its one image (stylized.png in its run folder); "
            "`deeper predict` takes the weights of a style-fast run"
        )


# ----------------------------------------------------------------------------- fast style transfer


@register_task
class FastStyleTask(Task):
    name = "style-fast"
    description = (
        "feed-forward style transfer (Johnson et al.): a network learns one style on photographs' crops"
    )
    metrics = STYLE_METRICS
    primary = "loss"
    model_family = "restore"
    data_kind = "photos"
    options = {
        "style": TaskOption("", "style image: a file or a bundled photograph"),
        "style_size": TaskOption(256, "longer side of the style image, pixels", low=16, high=2048),
        "patch": TaskOption(128, "side of the training crops", low=16, high=1024),
        "patches": TaskOption(1024, "training crops per epoch", low=1, high=10**8),
        "eval_crop": TaskOption(256, "score the central N x N of each held-out photograph (0: whole)", low=0, high=8192),
        "figures": TaskOption(True, "draw style_fast.png (photograph, stylised) into the run folder"),
        **FEATURE_OPTIONS,
    }  # fmt: skip
    dry_run = {
        "data": "photos", "model": "style-net", "model_kwargs": {"width": 4, "blocks": 1}, "batch_size": 2,
        "epochs": 2, "lr": 0.001,
        "task_args": {"style": "brick", "style_size": 32, "patch": 16, "patches": 8, "eval_crop": 24, "width": 4,
                      "figures": False},
    }  # fmt: skip

    def build(self, ctx: BuildContext) -> Built:
        from deeper.models import create_model
        from deeper.models.image2image.style import StyleNet
        from deeper.tasks.superres import make_sources

        cfg, a = ctx.cfg, self.args
        net = create_model(cfg.model, num_classes=3, in_chans=3, **cfg.model_kwargs)
        if not isinstance(net, StyleNet):
            raise ConfigError(f"model {cfg.model!r} is not a style network (style-net)")
        dev = ctx.device
        style = load_picture(a["style"], a["style_size"], what="style").to(dev)
        self.losses = StyleLoss(
            feature_net(a["features"], seed=FEATURE_SEED, width=a["width"]).to(dev), style
        )
        self.referee = StyleLoss(
            feature_net(a["referee"], seed=REFEREE_SEED, width=a["width"]).to(dev), style
        )
        self.style_image = style
        cl = ctx.channels_last(net)
        train, val, test, patch = make_sources(self, ctx, "rgb", 1, a["patch"], channels_last=cl)
        net = ctx.place(net, channels_last=cl)
        opt, sched = ctx.optimizer(net.parameters(), train.steps_per_epoch)
        meta = {
            "model": cfg.model, "num_classes": 3, "in_chans": 3, "dataset": cfg.data, "style": a["style"],
            "features": describe_features(a["features"], FEATURE_SEED, a["width"]),
            "referee": describe_features(a["referee"], REFEREE_SEED, a["width"]),
            "patch": patch, "model_kwargs": dict(cfg.model_kwargs),
        }  # fmt: skip
        return Built(Parts.single(net, opt, sched), train, val, test, meta)

    def objective(self, net: nn.Module, x: torch.Tensor):
        out = net(x)
        content, style = self.losses(out, self.losses.content_features(x))
        a = self.args
        loss = (a["content_weight"] * content + a["style_weight"] * style).mean()
        return out, loss, content, style

    def loss(self, nets: Nets, x: torch.Tensor) -> StepOutput:
        _, loss, content, style = self.objective(nets["net"], x)
        n = x.shape[0]
        sums = {"loss": loss.detach() * n, "content": content.detach().sum(), "style": style.detach().sum()}
        return StepOutput(loss, sums, n)

    def evaluation_step(self, nets: Nets, x: torch.Tensor) -> StepOutput:
        out, loss, content, style = self.objective(nets[self.export], x)
        held = self.referee.style(out) / self.referee.style(x).clamp(
            min=1e-12
        )  # relative to the photograph's own
        n = x.shape[0]
        sums = {"loss": loss * n, "content": content.sum(), "style": style.sum(), "heldout_style": held.sum(),
                "content_ssim": ssim(out, x).sum()}  # fmt: skip
        return StepOutput(None, sums, n)

    def finish(self, run, run_dir, test: dict) -> dict:
        if not (self.args["figures"] and run.test_loader is not None):
            return {}
        from deeper.image2image.figures import image_grid

        net = run.final_model
        src = run.test_loader
        was = net.training
        net.eval()
        with torch.inference_mode():
            row = [("style", self.style_image)]
            for idx in src.batches[:3]:
                x = src.images(idx[:1])
                row += [(src.photos.names[idx[0]], x), ("stylised", net(x))]
        net.train(was)
        image_grid([row], Path(run_dir) / "style_fast.png", title=f"{run.model_name}: held-out style loss "
                   f"x{test.get('heldout_style', math.nan):.3f} of the photographs'", cell=2.4)  # fmt: skip
        return {}

    @torch.inference_mode()
    def predict(self, model: nn.Module, meta: dict, images: list, *, device: torch.device, out_dir=None,
                **_) -> list[dict]:  # fmt: skip
        from deeper.image2image.images import read_image, write_image

        out = Path(out_dir) if out_dir else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        used: set[str] = set()
        answers = []
        for path in images:
            x = read_image(path, min_size=8)
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            y = model(x.to(device))
            answer = {"image": str(path), "output": None, "style": meta.get("style", "")}
            if out is not None:
                answer["output"] = write_image(output_path(out, path, used, "styled"), y)
            answers.append(answer)
        return answers

    def describe_prediction(self, answer: dict, **_) -> str:
        where = f" -> {answer['output']}" if answer.get("output") else " (give -o DIR to write it)"
        return f"{answer['image']}: stylised{where}"


__all__ = ["STYLE_LAYERS", "FastStyleTask", "ImageParam", "StyleTask", "load_picture"]
