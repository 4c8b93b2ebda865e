"""Super-resolution (task ``superres``): SRCNN, ESPCN and SRResNet on the luminance of photographs.

Protocol as the papers: the network reads and writes the luminance Y (BT.601, MATLAB's
``rgb2ycbcr``); the low-resolution image is the original (cropped to a multiple of the
scale) shrunk by bicubic resizing and rounded to 8 bits; the baseline is that image
enlarged by the same resize; network and baseline are rounded to 8 bits and scored by
PSNR and SSIM (torchmetrics) after trimming ``scale`` pixels on every side.  Training
takes random patches of the training photographs (flips and quarter turns), loss MSE;
scoring takes the held-out photographs whole (``deeper datasets``: the ``photos`` split)
or, for MNIST/Fashion-MNIST/digits, 200 test images.

``srgan`` (:mod:`deeper.tasks.srgan`) trains the same generator adversarially.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deeper.errors import ConfigError
from deeper.image2image.common import output_path
from deeper.image2image.dead_leaves import HELP as DEAD_LEAVES_HELP
from deeper.image2image.dead_leaves import with_dead_leaves
from deeper.image2image.ensemble import HELP as ENSEMBLE_HELP
from deeper.image2image.ensemble import SIZES as ENSEMBLE_SIZES
from deeper.image2image.metrics import psnr, scores
from deeper.image2image.sources import (
    SCALES_HELP,
    ImageSource,
    PatchSource,
    epoch_steps,
    load_split,
    parse_scales,
    with_scales,
)
from deeper.image2image.superres import sr_inputs, super_resolve
from deeper.tasks.base import Metric, Nets, StepOutput, Task, TaskOption, register_task
from deeper.train.build import BuildContext, Built
from deeper.train.parts import Parts

SR_METRICS = (
    Metric("psnr", label="PSNR", fmt=".2f"),
    Metric("ssim", label="SSIM"),
    Metric("bicubic_psnr", label="bicubic", fmt=".2f"),
    Metric("bicubic_ssim", label=""),
    Metric("single_psnr", label="", fmt=".2f"),
)
#: what the evaluation of a super-resolution network scores: metric -> (PSNR or SSIM, image scored)
SR_SCORES = {
    "psnr": ("psnr", "out"),
    "ssim": ("ssim", "out"),
    "bicubic_psnr": ("psnr", "bicubic"),
    "bicubic_ssim": ("ssim", "bicubic"),
}
SR_OPTIONS = {
    "scale": TaskOption(2, "upscaling factor", choices=(2, 3, 4, 8)),
    "patch": TaskOption(48, "side of the high-resolution training patches (a multiple of the scale)", low=4, high=1024),
    "patches": TaskOption(8192, "training patches per epoch", low=1, high=10**8),
    "balance": TaskOption(False, "draw each training photograph equally often (default: in proportion to its area)"),
    "scales": TaskOption("", SCALES_HELP),
    "dead_leaves": TaskOption(0, DEAD_LEAVES_HELP, low=0, high=1000),
    "min_std": TaskOption(0.0, "skip training patches flatter than this standard deviation (0-1 scale; 0: keep all)",
                          low=0.0, high=0.5),
    "eval_images": TaskOption(0, "held-out images scored (0: all; a digit dataset: 200)", low=0, high=10**6),
    "eval_crop": TaskOption(0, "score the central N x N of each held-out image (0: whole)", low=0, high=8192),
    "self_ensemble": TaskOption(1, ENSEMBLE_HELP, choices=ENSEMBLE_SIZES),
    "figures": TaskOption(True, "draw superres.png (bicubic, network, original) into the run folder"),
}  # fmt: skip


def patch_size(patch: int, scale: int, photos) -> int:
    """The training patch: ``patch`` (a multiple of ``scale``), no larger than the largest training image."""
    if patch % scale:
        raise ConfigError(
            f"patch {patch} is not a multiple of scale {scale}: the scale must divide the patch"
        )
    largest = max(min(im.shape[-2:]) for im in photos.images)
    if patch > largest:
        patch = largest - largest % scale  # small images (digits): the whole image
    if patch < 2 * scale:
        raise ConfigError(f"images of {largest} pixels are too small for scale {scale}")
    return patch


def eval_images(photos, crop: int):
    if not crop:
        return photos
    from deeper.data.photos import PhotoSet
    from deeper.image2image.figures import crop_centre

    return PhotoSet(photos.name, [crop_centre(im, crop) for im in photos.images], list(photos.names))


def make_sources(task: Task, ctx: BuildContext, colour: str, multiple: int, patch: int, *,
                 channels_last: bool = False):  # fmt: skip
    """``(train, val, test)`` sources of a run (``patch``: a multiple of ``multiple``), their batches in the
    channels-last layout where the network is."""
    cfg, a = ctx.cfg, task.args
    where = {"data_dir": cfg.run.data_dir}
    train = load_split(cfg.data, "train", n=cfg.sampling.subset, **where)
    if factors := parse_scales(a.get("scales", "")):
        train = with_scales(train, factors)
    if n := a.get("dead_leaves", 0):
        train = with_dead_leaves(train, n, seed=cfg.seed)
    patch = patch_size(patch, multiple, train)
    n_eval = a.get("eval_images", 0) or None
    val = load_split(cfg.data, "val", n=n_eval, **where) if cfg.sampling.val_size != 0 else None
    test = load_split(cfg.data, "test", n=n_eval, **where)
    dev = ctx.device
    source = PatchSource(
        train.to(dev), patch=patch, batch_size=ctx.batch_size, colour=colour, seed=cfg.seed,
        steps=epoch_steps(a["patches"], ctx.batch_size, ctx.world_size), rank=ctx.rank, world_size=ctx.world_size,
        balance=bool(a.get("balance", False)), min_std=float(a.get("min_std", 0.0)), channels_last=channels_last,
    )  # fmt: skip
    bs = min(cfg.sampling.eval_batch_size, 64)

    def whole(p):
        return ImageSource(
            eval_images(p, a["eval_crop"]).to(dev),
            batch_size=bs,
            colour=colour,
            multiple=multiple,
            channels_last=channels_last,
        )

    return source, (whole(val) if val is not None else None), whole(test), patch


def sr_model(cfg, scale: int) -> tuple[nn.Module, dict]:
    """The super-resolution network ``cfg.model`` for ``scale`` and the options that rebuild it."""
    import inspect

    from deeper.models import create_model, get_model_entry
    from deeper.models.image2image.sr import SuperResolution

    not_sr = ConfigError(f"model {cfg.model!r} is not a super-resolution network (srcnn, espcn, srresnet)")
    if "scale" not in inspect.signature(get_model_entry(cfg.model).factory).parameters:
        raise not_sr
    kwargs = {**cfg.model_kwargs, "scale": scale}
    net = create_model(cfg.model, num_classes=1, in_chans=1, **kwargs)
    if not isinstance(net, SuperResolution):
        raise not_sr
    return net, kwargs


@register_task
class SuperResolutionTask(Task):
    name = "superres"
    description = (
        "super-resolution of photographs' luminance (SRCNN, ESPCN, SRResNet): PSNR/SSIM against bicubic"
    )
    metrics = (Metric("loss", higher_is_better=False), *SR_METRICS)
    primary = "psnr"
    data_kind = ("photos", "images")
    model_family = "restore"
    options = {
        **SR_OPTIONS,
        "loss_border": TaskOption(
            0, "pixels of each side of a training patch left out of the loss (SRCNN's paper scores its 33-pixel "
            "patches on the central 21: a patch's edges, where bicubic and padding differ from a whole image's, "
            "then do not train the network)", low=0, high=512,
        ),
    }  # fmt: skip
    dry_run = {
        "data": "photos", "model": "espcn", "model_kwargs": {"n1": 8, "n2": 4}, "batch_size": 4, "epochs": 2,
        "lr": 0.001, "task_args": {"scale": 2, "patch": 16, "patches": 16, "eval_crop": 32, "figures": False},
    }  # fmt: skip

    def __init__(self, **task_args):
        super().__init__(**task_args)
        self.scale = self.args["scale"]
        self.upsampled_input = False
        self._ensemble = 1  # the self-ensemble of the evaluation under way (the test split's only)

    # ---- building
    def build(self, ctx: BuildContext) -> Built:
        cfg = ctx.cfg
        net, kwargs = sr_model(cfg, self.scale)
        self.upsampled_input = net.upsampled_input
        cl = ctx.channels_last(net)
        train, val, test, patch = make_sources(
            self, ctx, "y", self.scale, self.args["patch"], channels_last=cl
        )
        if patch <= 2 * self.args["loss_border"]:
            raise ConfigError(
                f"loss_border {self.args['loss_border']} leaves nothing of the {patch}-pixel training patches"
            )
        net = ctx.place(net, channels_last=cl)
        opt, sched = ctx.optimizer(net.parameters(), train.steps_per_epoch)
        meta = self.metadata(cfg, kwargs, train, patch)
        return Built(Parts.single(net, opt, sched), train, val, test, meta)

    def metadata(self, cfg, kwargs: dict, train: PatchSource, patch: int) -> dict:
        return {
            "model": cfg.model, "num_classes": 1, "in_chans": 1, "dataset": cfg.data, "scale": self.scale,
            "colour": "y", "upsampled_input": self.upsampled_input, "patch": patch,
            "train_images": len(train.photos), "model_kwargs": kwargs,
        }  # fmt: skip

    # ---- steps
    def forward(
        self, net: nn.Module, hr: torch.Tensor, ensemble: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(network output, bicubic baseline)`` of high-resolution images (``ensemble``: of that many
        flips and turns of the input)."""
        lr, bic = sr_inputs(hr, self.scale)
        out = super_resolve(net, lr, bic, self.scale, upsampled_input=self.upsampled_input, ensemble=ensemble)
        return out, bic

    def loss(self, nets: Nets, hr: torch.Tensor) -> StepOutput:
        out, _ = self.forward(nets["net"], hr)
        if b := self.args["loss_border"]:
            out, hr = out[..., b:-b, b:-b], hr[..., b:-b, b:-b]
        loss = F.mse_loss(out, hr)
        n = hr.shape[0]
        return StepOutput(
            loss, {"loss": loss.detach() * n, "psnr": psnr(out.detach().clamp(0, 1), hr).sum()}, n
        )

    def evaluation_step(self, nets: Nets, hr: torch.Tensor) -> StepOutput:
        from deeper.image2image.images import quantize

        net = nets[self.export]
        out, bic = self.forward(net, hr, self._ensemble)
        out = out.float().clamp(0, 1)
        n = hr.shape[0]
        loss = F.mse_loss(out, hr, reduction="none").mean((1, 2, 3)).sum()
        preds = {"out": quantize(out), "bicubic": quantize(bic)}
        if self._ensemble > 1:
            preds["single"] = quantize(self.forward(net, hr)[0].float().clamp(0, 1))
        return StepOutput(None, {"loss": loss}, n, preds=preds, target=hr)

    def eval_metrics(self, split: str) -> dict:
        self._ensemble = self.args["self_ensemble"] if split == "test" else 1
        single = {"single_psnr": ("psnr", "single")} if self._ensemble > 1 else {}
        return scores({**SR_SCORES, **single}, border=self.scale)

    # ---- the end of a run
    def finish(self, run, run_dir, test: dict) -> dict:
        extra = {}
        if "bicubic_psnr" in test:
            extra = {"bicubic_psnr": test["bicubic_psnr"], "bicubic_ssim": test.get("bicubic_ssim"),
                     "gain_db": test["psnr"] - test["bicubic_psnr"]}  # fmt: skip
            if "single_psnr" in test:
                extra["single_gain_db"] = test["single_psnr"] - test["bicubic_psnr"]
        if self.args["figures"] and run.test_loader is not None:
            self.draw(run.final_model, run.test_loader.dataset, Path(run_dir) / "superres.png",
                      title=f"{run.model_name} x{self.scale} on {run.data_name}: test PSNR {test.get('psnr', 0):.2f} dB "
                      f"(bicubic {test.get('bicubic_psnr', 0):.2f})")  # fmt: skip
        return extra

    def draw(self, net: nn.Module, photos, path, *, title: str, n: int = 3, crop: int = 96) -> str:
        """Bicubic, network and original of the first ``n`` held-out images (central crops)."""
        from deeper.image2image.figures import crop_centre, image_grid
        from deeper.image2image.images import downscale, modcrop
        from deeper.image2image.superres import bicubic_colour, upscale_colour

        p = next(net.parameters())
        was = net.training
        net.eval()
        rows = []
        for name, im in list(zip(photos.names, photos.images))[:n]:
            hr = modcrop(im[None].float().div(255), self.scale).to(p.device)
            lr = downscale(hr, self.scale)
            up = upscale_colour(
                net, lr, self.scale, upsampled_input=self.upsampled_input, ensemble=self.args["self_ensemble"]
            )
            rows.append([(f"{name}: bicubic", crop_centre(bicubic_colour(lr, self.scale), crop)),
                         ("network", crop_centre(up, crop)), ("original", crop_centre(hr, crop))])  # fmt: skip
        net.train(was)
        return image_grid(rows, path, title=title)

    # ---- using trained weights
    def load_model(self, path, name: str | None = None):
        from deeper.models.weights import model_from_weights

        net, meta = model_from_weights(path, name)
        self.scale = int(getattr(net, "scale", meta.get("scale", 2)))
        self.upsampled_input = bool(getattr(net, "upsampled_input", False))
        return net, meta

    @torch.inference_mode()
    def predict(self, model: nn.Module, meta: dict, images: list, *, device: torch.device, out_dir=None,
                **_) -> list[dict]:  # fmt: skip
        from deeper.image2image.images import read_image, write_image
        from deeper.image2image.superres import upscale_colour

        s = self.scale
        out = Path(out_dir) if out_dir else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        used: set[str] = set()
        answers = []
        for path in images:
            lr = read_image(path, min_size=4)
            up = upscale_colour(
                model,
                lr.to(device),
                s,
                upsampled_input=self.upsampled_input,
                ensemble=self.args["self_ensemble"],
            )
            answer = {
                "image": str(path),
                "output": None,
                "scale": s,
                "size": [int(up.shape[-1]), int(up.shape[-2])],
            }
            if out is not None:
                answer["output"] = write_image(output_path(out, path, used, f"x{s}"), up)
            answers.append(answer)
        return answers

    def describe_prediction(self, answer: dict, **_) -> str:
        w, h = answer["size"]
        where = f" -> {answer['output']}" if answer.get("output") else " (give -o DIR to write it)"
        return f"{answer['image']}: x{answer['scale']} to {w}x{h}{where}"
