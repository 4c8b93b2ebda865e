"""Image restoration (task ``restore``, "image reconstruction"): denoising and inpainting.

A network (``restore-unet``: a residual U-Net) learns to undo a damage
(:mod:`deeper.image2image.damage`) on random patches of the training photographs (or the
training images of MNIST/Fashion-MNIST/digits): Gaussian noise (``damage=noise``) or missing
rectangles (``damage=inpaint``, the mask given as a channel).  The damage of a training
batch is drawn from the engine's random state (restored on resume); the held-out images
are damaged the same way at every evaluation (their own generator).  Scored by PSNR and
SSIM on the held-out images against the simple repairs: the damaged image itself, an
oracle-tuned Gaussian blur (noise) or the mean of the known pixels (holes);
``baseline_psnr`` is, image by image, the best of them.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deeper.errors import ConfigError
from deeper.image2image.common import output_path
from deeper.image2image.damage import add_noise, best_blur, hole_mask, mean_fill
from deeper.image2image.dead_leaves import HELP as DEAD_LEAVES_HELP
from deeper.image2image.ensemble import HELP as ENSEMBLE_HELP
from deeper.image2image.ensemble import SIZES as ENSEMBLE_SIZES
from deeper.image2image.ensemble import dihedral_mean
from deeper.image2image.images import quantize
from deeper.image2image.metrics import psnr, scores
from deeper.image2image.sources import SCALES_HELP
from deeper.tasks.base import Metric, Nets, StepOutput, Task, TaskOption, register_task
from deeper.train.build import BuildContext, Built
from deeper.train.parts import Parts

EVAL_SEED = 20240


@register_task
class RestoreTask(Task):
    name = "restore"
    description = "restoration of damaged photographs or digits: denoising, inpainting (U-Net; PSNR/SSIM vs simple repairs)"
    metrics = (
        Metric("loss", higher_is_better=False),
        Metric("psnr", label="PSNR", fmt=".2f"),
        Metric("ssim", label="SSIM"),
        Metric("baseline_psnr", label="baseline", fmt=".2f"),
        Metric("damaged_psnr", label="", fmt=".2f"),
        Metric("blur_psnr", label="", fmt=".2f"),
        Metric("meanfill_psnr", label="", fmt=".2f"),
        Metric("baseline_ssim", label=""),
        Metric("single_psnr", label="", fmt=".2f"),
    )
    primary = "psnr"
    data_kind = ("photos", "images")
    model_family = "restore"
    options = {
        "damage": TaskOption("noise", "what to repair: noise (Gaussian) or inpaint (missing rectangles)",
                             choices=("noise", "inpaint")),
        "sigma": TaskOption(25.0, "noise: standard deviation in 8-bit levels", low=0.0, high=255.0),
        "hole": TaskOption(16, "inpaint: largest side of a missing rectangle, pixels", low=1, high=4096),
        "cover": TaskOption(0.15, "inpaint: fraction of the image the rectangles cover", low=0.0, high=0.9),
        "colour": TaskOption("auto", "rgb, grey, or auto (rgb for photographs, grey for digits)",
                             choices=("auto", "rgb", "grey")),
        "patch": TaskOption(64, "side of the training patches", low=4, high=1024),
        "patches": TaskOption(4096, "training patches per epoch", low=1, high=10**8),
        "balance": TaskOption(False, "draw each training photograph equally often (default: in proportion to its area)"),
        "scales": TaskOption("", SCALES_HELP),
        "dead_leaves": TaskOption(0, DEAD_LEAVES_HELP, low=0, high=1000),
        "min_std": TaskOption(0.0, "skip training patches flatter than this standard deviation (0-1 scale)",
                              low=0.0, high=0.5),
        "eval_images": TaskOption(0, "held-out images scored (0: all; a digit dataset: 200)", low=0, high=10**6),
        "eval_crop": TaskOption(0, "score the central N x N of each held-out image (0: whole)", low=0, high=8192),
        "self_ensemble": TaskOption(1, ENSEMBLE_HELP, choices=ENSEMBLE_SIZES),
        "figures": TaskOption(True, "draw restore.png (damaged, baseline, restored, original) into the run folder"),
    }  # fmt: skip
    dry_run = {
        "data": "photos", "model": "restore-unet", "model_kwargs": {"width": 4, "depth": 2}, "batch_size": 4,
        "epochs": 2, "lr": 0.001,
        "task_args": {"damage": "inpaint", "patch": 16, "patches": 16, "hole": 6, "eval_crop": 32, "figures": False},
    }  # fmt: skip

    def __init__(self, **task_args):
        super().__init__(**task_args)
        self.colour = "rgb"
        self._eval_gen: torch.Generator | None = None
        self._ensemble = 1  # the self-ensemble of the evaluation under way (the test split's only)

    # ---- building
    def build(self, ctx: BuildContext) -> Built:
        import inspect

        from deeper.data import get_dataset_spec
        from deeper.image2image.sources import colour_channels
        from deeper.models import create_model, get_model_entry
        from deeper.models.image2image.restore import RestoreUNet
        from deeper.tasks.superres import make_sources

        cfg, a = ctx.cfg, self.args
        spec = get_dataset_spec(cfg.data)
        self.colour = a["colour"] if a["colour"] != "auto" else ("rgb" if spec.kind == "photos" else "grey")
        c = colour_channels(self.colour)
        not_restore = ConfigError(f"model {cfg.model!r} is not a restoration network (restore-unet)")
        if "mask_input" not in inspect.signature(get_model_entry(cfg.model).factory).parameters:
            raise not_restore
        kwargs = {**cfg.model_kwargs, "mask_input": a["damage"] == "inpaint"}
        net = create_model(cfg.model, num_classes=c, in_chans=c, **kwargs)
        if not isinstance(net, RestoreUNet):
            raise not_restore
        cl = ctx.channels_last(net)
        train, val, test, patch = make_sources(self, ctx, self.colour, 1, a["patch"], channels_last=cl)
        net = ctx.place(net, channels_last=cl)
        opt, sched = ctx.optimizer(net.parameters(), train.steps_per_epoch)
        meta = {
            "model": cfg.model, "num_classes": c, "in_chans": c, "dataset": cfg.data, "colour": self.colour,
            "damage": a["damage"], "sigma": a["sigma"], "hole": a["hole"], "cover": a["cover"], "patch": patch,
            "train_images": len(train.photos), "model_kwargs": kwargs,
        }  # fmt: skip
        return Built(Parts.single(net, opt, sched), train, val, test, meta)

    # ---- damage
    def damage(self, clean: torch.Tensor, generator: torch.Generator | None = None):
        """``(damaged, mask or None)`` of clean images (training: the engine's random state)."""
        a = self.args
        if a["damage"] == "noise":
            return add_noise(clean, a["sigma"], generator), None
        n, _, h, w = clean.shape
        mask = hole_mask(n, h, w, hole=a["hole"], cover=a["cover"], generator=generator, device=clean.device)
        return clean * (1 - mask), mask

    def restore(self, net: nn.Module, damaged: torch.Tensor, mask: torch.Tensor | None,
                ensemble: int = 1) -> torch.Tensor:  # fmt: skip
        """The network's repair (``ensemble``: averaged over that many flips and turns of the input)."""
        return dihedral_mean(lambda x, m: net(x, m) if m is not None else net(x), damaged, mask, n=ensemble)

    def loss(self, nets: Nets, clean: torch.Tensor) -> StepOutput:
        damaged, mask = self.damage(clean)
        out = self.restore(nets["net"], damaged, mask)
        loss = F.mse_loss(out, clean)
        n = clean.shape[0]
        return StepOutput(
            loss, {"loss": loss.detach() * n, "psnr": psnr(out.detach().clamp(0, 1), clean).sum()}, n
        )

    def baselines(self, damaged: torch.Tensor, mask: torch.Tensor | None, clean: torch.Tensor) -> dict:
        out = {"damaged": quantize(damaged)}
        if mask is None:
            out["blur"] = quantize(best_blur(damaged, clean))
        else:
            out["meanfill"] = quantize(mean_fill(damaged, mask))
        cands = list(out.values())
        values = torch.stack([psnr(c, clean) for c in cands])
        best = values.argmax(0)
        out["baseline"] = torch.stack(cands)[best, torch.arange(clean.shape[0])]
        return out

    def evaluation_step(self, nets: Nets, clean: torch.Tensor) -> StepOutput:
        damaged, mask = self.damage(clean, self._eval_gen)
        net = nets[self.export]
        out = self.restore(net, damaged, mask, self._ensemble).float().clamp(0, 1)
        n = clean.shape[0]
        loss = F.mse_loss(out, clean, reduction="none").mean((1, 2, 3)).sum()
        preds = {"out": quantize(out), **self.baselines(damaged, mask, clean)}
        if self._ensemble > 1:
            preds["single"] = quantize(self.restore(net, damaged, mask).float().clamp(0, 1))
        return StepOutput(None, {"loss": loss}, n, preds=preds, target=clean)

    def eval_metrics(self, split: str) -> dict:
        self._eval_gen = torch.Generator().manual_seed(EVAL_SEED)  # the same damage at every evaluation
        self._ensemble = self.args["self_ensemble"] if split == "test" else 1
        other = "blur" if self.args["damage"] == "noise" else "meanfill"
        single = {"single_psnr": ("psnr", "single")} if self._ensemble > 1 else {}
        return scores({
            "psnr": ("psnr", "out"), "ssim": ("ssim", "out"), "baseline_psnr": ("psnr", "baseline"),
            "baseline_ssim": ("ssim", "baseline"), "damaged_psnr": ("psnr", "damaged"),
            f"{other}_psnr": ("psnr", other), **single,
        })  # fmt: skip

    # ---- the end of a run
    def finish(self, run, run_dir, test: dict) -> dict:
        extra = {}
        if "baseline_psnr" in test:
            extra = {"baseline_psnr": test["baseline_psnr"], "gain_db": test["psnr"] - test["baseline_psnr"]}
            if "single_psnr" in test:
                extra["single_gain_db"] = test["single_psnr"] - test["baseline_psnr"]
        if self.args["figures"] and run.test_loader is not None:
            self.draw(run.final_model, run.test_loader, Path(run_dir) / "restore.png",
                      title=f"{run.model_name}, {self.args['damage']} on {run.data_name}: test PSNR "
                      f"{test.get('psnr', 0):.2f} dB (best simple repair {test.get('baseline_psnr', 0):.2f})")  # fmt: skip
        return extra

    @torch.inference_mode()
    def draw(self, net: nn.Module, source, path, *, title: str, n: int = 3, crop: int = 128) -> str:
        from deeper.image2image.figures import crop_centre, image_grid

        was = net.training
        net.eval()
        gen = torch.Generator().manual_seed(EVAL_SEED)
        rows = []
        for idx in source.batches[:n]:
            clean = source.images(idx[:1])
            damaged, mask = self.damage(clean, gen)
            restored = self.restore(net, damaged, mask, self.args["self_ensemble"]).clamp(0, 1)
            base = self.baselines(damaged, mask, clean)
            name = source.photos.names[idx[0]]
            rows.append([(f"{name}: damaged {float(psnr(base['damaged'], clean)):.1f} dB", crop_centre(damaged.clamp(0, 1), crop)),
                         (f"best simple {float(psnr(base['baseline'], clean)):.1f} dB", crop_centre(base["baseline"], crop)),
                         (f"restored {float(psnr(quantize(restored), clean)):.1f} dB", crop_centre(restored, crop)),
                         ("original", crop_centre(clean, crop))])  # fmt: skip
        net.train(was)
        return image_grid(rows, path, title=title)

    # ---- using trained weights
    def load_model(self, path, name: str | None = None):
        from deeper.models.weights import model_from_weights

        net, meta = model_from_weights(path, name)
        self.colour = str(meta.get("colour", "rgb"))
        for key in ("damage",):
            if key in meta:
                self.args[key] = meta[key]
        return net, meta

    @torch.inference_mode()
    def predict(self, model: nn.Module, meta: dict, images: list, *, device: torch.device, out_dir=None,
                **_) -> list[dict]:  # fmt: skip
        """Repair each image as it is (noise: the image is taken as noisy; inpaint: pure black pixels are
        taken as missing)."""
        from deeper.image2image.images import read_image, write_image

        c = int(meta.get("in_chans", 3))
        out = Path(out_dir) if out_dir else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        used: set[str] = set()
        answers = []
        for path in images:
            x = read_image(path, channels=c, min_size=4).to(device)
            mask = None
            if self.args["damage"] == "inpaint":
                mask = (x.amax(1, keepdim=True) == 0).float()
            y = quantize(self.restore(model, x, mask, self.args["self_ensemble"]))
            answer = {"image": str(path), "output": None, "damage": self.args["damage"]}
            if mask is not None:
                answer["missing_pixels"] = int(mask.sum())
            if out is not None:
                answer["output"] = write_image(output_path(out, path, used, "restored"), y)
            answers.append(answer)
        return answers

    def describe_prediction(self, answer: dict, **_) -> str:
        where = f" -> {answer['output']}" if answer.get("output") else " (give -o DIR to write it)"
        return f"{answer['image']}: {answer['damage']} repaired{where}"
