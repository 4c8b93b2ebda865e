"""Text to image on the captioned digit scenes (``scenes-cap``): two tasks, scored alike.

- ``text-to-image``: one network, a diffusion U-Net (``ddpm-unet``) reading the caption, trained
  with DDPM's loss and sampled with DDIM and classifier-free guidance (the caption dropped with
  probability ``p_uncond``);
- ``text-layout``: two stages (``layout-gru``, :mod:`deeper.models.generate.layout`): the caption
  to a layout of digits (class, place, size; learnt from the training scenes' layouts with
  teacher forcing), the layout to a scene drawn with glyphs of a class-conditional GAN trained
  here (``glyphs``: its ``generate`` run) or of real training digits (``glyphs`` empty).

The score of both is **prompt match**: the share of generated scenes whose digits and relations,
read back by the reader of :mod:`deeper.generate.text` (blobs of ink labelled by a digit
classifier), are those the prompt states.  The same reader on the real scenes with their own
captions (``reader_real``) is the ceiling of the figure.  Evaluation draws its noise from a
generator of its own, so scores compare across epochs.  Figures: ``samples.png`` (the first 16 test
prompts, in ``samples.txt``).
"""

from __future__ import annotations

import json
import math

import torch

from deeper.errors import ConfigError
from deeper.generate.diffusion import ddim_sample, guided
from deeper.tasks.base import Metric, Nets, StepOutput, TaskOption, register_task
from deeper.tasks.generate import EVAL_SEED, DiffusionTask, GenerationTask, Schedule, sample, save_grid
from deeper.train.build import BuildContext, Built
from deeper.train.parts import Parts

METRICS = (Metric("prompt_match", label="match", fmt=".3f"), Metric("reader_real", label=""))

READER_OPTIONS = {
    "classifier": TaskOption(
        "",
        "the reader's digit classifier: a classify run of the scenes' source digits ('': "
        "a LeNet-5 trained in the run on the reader's crops of the training scenes)",
    ),  # fmt: skip
    "classifier_epochs": TaskOption(
        4, "epochs of the LeNet-5 trained in the run when no classifier is given", low=1, high=100
    ),  # fmt: skip
    "source": TaskOption(
        "",
        "digits of the scenes: '' (the dataset's own) or digits (scikit-learn's, offline)",
        choices=("", "digits"),
    ),  # fmt: skip
    "train_scenes": TaskOption(
        0, "training scenes made from the source's training digits (0: the preset's count)", low=0, high=10**6
    ),  # fmt: skip
    "val_samples": TaskOption(64, "prompts scored after every epoch (validation)", low=1, high=10**6),
    "test_samples": TaskOption(500, "prompts scored at the end (test)", low=1, high=10**6),
    "figures": TaskOption(True, "draw samples.png (the first 16 test prompts)"),
}


class CaptionedScenes:
    """Training batches ``(scenes in [0, 1], caption token ids, scene indices, caption indices)``: one of each
    scene's captions, drawn per sample."""

    def __init__(self, images: torch.Tensor, tokens: torch.Tensor, batch: int, *, seed: int, rank: int = 0,
                 world_size: int = 1):  # fmt: skip
        from deeper.data import BatchLoader, ImageDataset

        index = ImageDataset("scenes", images, torch.arange(len(images), device=images.device), ("scene",))
        self.loader = BatchLoader(index, batch, shuffle=True, seed=seed, rank=rank, world_size=world_size)
        self.tokens = tokens  # (N, captions, L)
        self.dataset = images

    @property
    def steps_per_epoch(self) -> int:
        return self.loader.steps_per_epoch

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.loader.set_epoch(epoch, skip_batches)

    def __iter__(self):
        for x, idx in self.loader:
            pick = torch.randint(
                0, self.tokens.shape[1], (len(idx),), device=idx.device
            )  # the run's random state
            yield x, self.tokens[idx, pick], idx, pick


class PromptSource:
    """Evaluation batches ``(real scenes, prompt token ids, prompt indices)``: scene ``i`` with its caption
    ``i mod captions`` (every kind of caption in turn)."""

    def __init__(self, images: torch.Tensor, captions: list[str], tokens: torch.Tensor, batch: int):
        self.images, self.captions, self.tokens, self.batch = images, captions, tokens, batch
        self.steps_per_epoch = math.ceil(len(images) / batch)
        self.dataset = images

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        pass

    def __iter__(self):
        for i in range(0, len(self.images), self.batch):
            j = torch.arange(i, min(i + self.batch, len(self.images)))
            yield self.images[j].float() / 255, self.tokens[j], j


class PromptTask:
    """What both text-to-image tasks share: the scenes and their captions, the reader, the prompt-match score."""

    data_kind = "scenes"
    metrics = (Metric("loss", higher_is_better=False), *METRICS)
    primary = "prompt_match"

    def prompt_data(self, ctx: BuildContext):
        """The training scenes and the captions' token ids (N, captions, L); sets the scored sources, the reader,
        the vocabulary, the classes and the image shape."""
        from deeper.data import load_dataset
        from deeper.data.scenes import load_scenes
        from deeper.generate.features import load_classifier
        from deeper.generate.text import TextVocab, train_reader

        cfg, a = ctx.cfg, self.args
        where = {"data_dir": cfg.run.data_dir}
        digits = (lambda split: load_dataset("digits", split)) if a["source"] else (lambda split: None)
        train = load_scenes(cfg.data, "train", n=a["train_scenes"] or None, digits=digits("train"), **where)
        val = load_scenes(
            cfg.data, "val", n=max(1, min(a["val_samples"], 1000)), digits=digits("train"), **where
        )
        test = load_scenes(cfg.data, "test", n=a["test_samples"], digits=digits("test"), **where)
        if cfg.sampling.subset is not None:
            train = train.subset(slice(0, cfg.sampling.subset))
        self.classes = tuple(train.classes)
        self.num_classes = len(self.classes)
        self.image_shape = tuple(train.image_shape)
        self.source = "digits" if a["source"] else getattr(train, "source", "mnist")
        if a["classifier"]:
            src = load_dataset(self.source, "test", data_dir=cfg.run.data_dir)
            self.features = load_classifier(a["classifier"], self.source, src.image_shape)
        else:
            self.features = train_reader(train, epochs=a["classifier_epochs"], seed=cfg.seed)
        self.features = self.features.to(ctx.device)
        self.vocab = TextVocab.build(c for caps in train.captions for c in caps)
        self.length = length = max(len(c.split()) for caps in train.captions for c in caps) + 4
        dev = ctx.device
        tokens = self.vocab.encode([t for caps in train.captions for t in caps], length)
        tokens = tokens.view(len(train.captions), -1, length).to(dev)

        def prompts(ds):
            texts = [caps[i % len(caps)] for i, caps in enumerate(ds.captions)]
            return PromptSource(ds.images.to(dev), texts, self.vocab.encode(texts, length).to(dev),
                                cfg.sampling.eval_batch_size)  # fmt: skip

        self.sources = {"val": prompts(val), "test": prompts(test)}
        return train, tokens

    def prompt_meta(self, cfg, kind: str) -> dict:
        """The weights' metadata that ``deeper generate --prompt`` reads."""
        c, h, _ = self.image_shape
        return {
            "model": cfg.model, "kind": kind, "text": True, "dataset": cfg.data, "num_classes": self.num_classes,
            "in_chans": c, "img_size": h, "classes": list(self.classes), "conditional": False,
            "vocab": self.vocab.to_json(), "caption_length": self.length,
            "reader": self.features.describe(self.source if self.args["classifier"] else cfg.data),
        }  # fmt: skip

    def eval_metrics(self, split: str) -> dict:
        self._eval_gen = torch.Generator().manual_seed(EVAL_SEED.get(split, 1))
        self._split = split
        return {}

    def imagine(self, net, tokens: torch.Tensor, shape) -> torch.Tensor:
        """Scenes (N, C, H, W) in [0, 1] for the prompts' token ids, from the evaluation's noise."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluation_step(self, nets: Nets, batch) -> StepOutput:
        from deeper.generate.text import prompt_matches

        real, tokens, idx = batch
        fake = self.imagine(nets["G"], tokens, real.shape)
        texts = [self.sources[self._split].captions[int(i)] for i in idx]
        match = prompt_matches(fake, texts, self.features, self.classes)
        read_real = prompt_matches(real, texts, self.features, self.classes)  # the reader's own ceiling
        sums = {
            "prompt_match": torch.tensor(float(sum(match))),
            "reader_real": torch.tensor(float(sum(read_real))),
        }
        return StepOutput(None, sums, real.shape[0])

    def finish(self, run, run_dir, test: dict) -> dict:
        out = {"reader": run.metadata.get("reader"), "reader_real": test.get("reader_real")}
        if self.args["figures"]:
            g = run.parts.exported
            meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in run.metadata.items()}
            texts = self.sources["test"].captions[:16]
            images = sample(None, g, meta, len(texts), prompts=texts, seed=0)
            save_grid(images, run_dir / "samples.png", nrow=4)
            (run_dir / "samples.txt").write_text("\n".join(texts) + "\n")
            out["figures"] = [str(run_dir / "samples.png")]
        return out


@register_task
class TextToImageTask(PromptTask, DiffusionTask):
    name = "text-to-image"
    description = (
        "text-to-image: a diffusion U-Net conditioned on a scene's caption; prompts matched as read back"
    )
    options = {
        **{k: v for k, v in DiffusionTask.options.items() if k not in ("conditional", "classifier_epochs")},
        **READER_OPTIONS,
        "guidance": TaskOption(3.0, "classifier-free guidance scale (1: none)", low=0.0, high=100.0),
    }
    dry_run = {
        "data": "scenes-cap", "model": "ddpm-unet", "subset": 32, "batch_size": 16, "epochs": 2,
        "eval_batch_size": 16, "model_kwargs": {"width": 8, "mults": [1, 2], "attention": False}, "lr": 0.001,
        "task_args": {"source": "digits", "val_samples": 8, "test_samples": 8, "figures": False, "timesteps": 50,
                      "ddim_steps": 2, "classifier_epochs": 1},
    }  # fmt: skip

    def build(self, ctx: BuildContext) -> Built:
        from deeper.models import create_model

        cfg, a = ctx.cfg, self.args
        train, tokens = self.prompt_data(ctx)
        c, h, _ = self.image_shape
        self.schedule = Schedule(a["timesteps"])
        kwargs = {**dict(cfg.model_kwargs), "vocab": len(self.vocab), "img_size": h}
        net = ctx.place(create_model(cfg.model, num_classes=self.num_classes, in_chans=c, **kwargs))
        loader = CaptionedScenes(train.images.to(ctx.device), tokens, ctx.batch_size, seed=cfg.seed, rank=ctx.rank,
                                 world_size=ctx.world_size)  # fmt: skip
        opt, sched = ctx.optimizer(net.parameters(), loader.steps_per_epoch)
        meta = {
            **self.prompt_meta(cfg, "diffusion"), "timesteps": a["timesteps"], "ddim_steps": a["ddim_steps"],
            "guidance": a["guidance"], "model_kwargs": json.dumps({k: v for k, v in kwargs.items() if k != "img_size"}),
        }  # fmt: skip
        return Built(
            Parts.single(net, opt, sched, name="G"), loader, self.sources["val"], self.sources["test"], meta
        )

    def training_step(self, nets: Nets, batch, stepper, state) -> StepOutput:
        net = nets["G"]
        x, tokens, *_ = batch
        x0 = x * 2 - 1
        n = x0.shape[0]
        t = torch.randint(0, self.schedule.steps, (n,), device=x0.device)
        noise = torch.randn_like(x0)
        drop = torch.rand(n, device=x0.device) < self.args["p_uncond"]  # classifier-free guidance: no caption
        tokens = torch.where(drop[:, None], torch.zeros_like(tokens), tokens)
        with stepper.autocast():
            pred = net(self.schedule.q_sample(x0, t, noise), t, None, tokens)
            loss = (pred.float() - noise).square().mean()
        stepper.update("G", loss, state)
        return StepOutput(loss.detach(), {"loss": loss.detach() * n}, n)

    def imagine(self, net, tokens: torch.Tensor, shape) -> torch.Tensor:
        x_T = self.noise(shape, tokens.device)
        fake = ddim_sample(guided(net, tokens=tokens, scale=self.args["guidance"]), self.schedule, x_T,
                           self.args["ddim_steps"])  # fmt: skip
        return ((fake.float() + 1) / 2).clamp(0, 1)


def layouts_of(
    scenes, order: str = "left-to-right"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The layouts the layout network learns, per scene and caption: labels (N, C, K), ink-box centres (N, C, K, 2),
    cell sizes (N, C, K), counts (N,).  Slots left to right, or (``order="mention"``) in the order the caption
    names the digits (:func:`~deeper.data.captions.mention_order`), the others after them left to right."""
    from deeper.data.captions import CaptionError, left_to_right, mention_order, parse_caption

    counts = scenes.counts.long()
    boxes = scenes.boxes.float()
    centres = torch.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2], -1)
    n, k = scenes.labels.shape
    captions = [[""]] * n if order == "left-to-right" else scenes.captions
    perm = torch.arange(k).repeat(n, len(captions[0]), 1)  # (N, C, K): slot -> object
    classes = tuple(getattr(scenes, "classes", ())) or tuple(str(i) for i in range(10))
    for i, (b, lab, m) in enumerate(zip(boxes.numpy(), scenes.labels.numpy(), counts.tolist())):
        for c, text in enumerate(captions[i]):
            try:
                seq = mention_order(parse_caption(text, classes), b[:m], lab[:m]) if text else None
            except CaptionError:
                seq = None
            perm[i, c, :m] = torch.as_tensor(left_to_right(b[:m]) if seq is None else seq)
    labels = scenes.labels.long()[:, None].expand_as(perm).gather(2, perm).clamp(min=0)
    where = (
        centres[:, None].expand(-1, perm.shape[1], -1, -1).gather(2, perm[..., None].expand(-1, -1, -1, 2))
    )
    sizes = scenes.sizes.long()[:, None].expand_as(perm).gather(2, perm)
    return labels, where, sizes, counts


@register_task
class TextLayoutTask(PromptTask, GenerationTask):
    name = "text-layout"
    description = (
        "text-to-image in two stages: the caption to a layout of digits (GRU with attention), "
        "the layout to a scene drawn with a GAN's digits; prompts matched as read back"
    )
    metrics = (
        Metric("loss", higher_is_better=False),
        Metric("class_loss", higher_is_better=False, label="class"),
        Metric("place_loss", higher_is_better=False, label="place"),
        *METRICS,
    )
    model_family = "layout"
    options = {
        **READER_OPTIONS,
        "glyphs": TaskOption(
            "",
            "the digits drawn: a class-conditional generate run (folder or weights) on the scenes' source "
            "digits ('': real training digits, drawn at random)",
        ),  # fmt: skip
        "per_class": TaskOption(100, "glyphs '': real digits kept per class", low=1, high=10_000),
        "temperature": TaskOption(1.0, "sampling temperature of the layout's choices", low=0.01, high=10.0),
        "order": TaskOption(
            "mention",
            "order of the digits the layout network writes: as the caption names them (then the rest left to "
            "right), or left to right",
            choices=("mention", "left-to-right"),
        ),  # fmt: skip
    }
    dry_run = {
        "data": "scenes-cap", "model": "layout-gru", "subset": 32, "batch_size": 16, "epochs": 2,
        "eval_batch_size": 16, "model_kwargs": {"dim": 16}, "lr": 0.003,
        "task_args": {"source": "digits", "val_samples": 8, "test_samples": 8, "figures": False,
                      "classifier_epochs": 1, "per_class": 4},
    }  # fmt: skip

    def build(self, ctx: BuildContext) -> Built:
        from deeper.models import create_model

        cfg, a = ctx.cfg, self.args
        train, tokens = self.prompt_data(ctx)
        c, h, w = self.image_shape
        if h != w:
            raise ConfigError(f"{cfg.model} draws square scenes; {cfg.data} is {h}x{w}")
        self.layouts = [t.to(ctx.device) for t in layouts_of(train, a["order"])]
        live = train.sizes[train.sizes > 0]
        glyph_run = self.glyph_generator(a["glyphs"]) if a["glyphs"] else None
        glyph_kwargs = (
            {"glyphs": "gan", **{k: v for k, v in glyph_run[1].items() if k in ("latent", "width")}}
            if glyph_run else {"glyphs": "bank", "per_class": a["per_class"]}
        )  # fmt: skip
        kwargs = {
            "slots": int(train.labels.shape[1]), "min_size": int(live.min()), "max_size": int(live.max()),
            **dict(cfg.model_kwargs), **glyph_kwargs, "vocab": len(self.vocab), "img_size": h,
        }  # fmt: skip
        net = create_model(cfg.model, num_classes=self.num_classes, in_chans=c, **kwargs)
        if glyph_run:
            net.glyphs.generator.load_state_dict(glyph_run[0].state_dict())
        else:
            net.glyphs.glyphs.copy_(self.real_glyphs(cfg, a["per_class"]))
        net = ctx.place(net, compile=False)
        loader = CaptionedScenes(train.images.to(ctx.device), tokens, ctx.batch_size, seed=cfg.seed, rank=ctx.rank,
                                 world_size=ctx.world_size)  # fmt: skip
        opt, sched = ctx.optimizer(net.layout.parameters(), loader.steps_per_epoch)
        meta = {
            **self.prompt_meta(cfg, "layout"), "temperature": a["temperature"],
            "glyphs": glyph_run[2] if glyph_run else f"{a['per_class']} real training digits per class",
            "model_kwargs": json.dumps({k: v for k, v in kwargs.items() if k != "img_size"}),
        }  # fmt: skip
        return Built(
            Parts.single(net, opt, sched, name="G"), loader, self.sources["val"], self.sources["test"], meta
        )

    def glyph_generator(self, path: str):
        """``(generator, its model kwargs, a description)`` of a class-conditional GAN run on the scenes' digits."""
        from deeper.models.weights import weights_file
        from deeper.tasks.generate import load_generator

        file = weights_file(path)
        g, meta = load_generator(file)
        if meta.get("kind") not in ("gan", "wgan-gp"):
            raise ConfigError(f"glyphs={path}: a GAN run is needed (this one is {meta.get('kind')})")
        if str(meta.get("conditional", "false")).lower() != "true" or int(meta.get("num_classes", 0)) != len(
            self.classes
        ):
            raise ConfigError(
                f"glyphs={path}: the GAN must be class-conditional on the {len(self.classes)} digits"
            )
        if int(meta.get("img_size", 0)) != 28 or int(meta.get("in_chans", 0)) != 1:
            raise ConfigError(f"glyphs={path}: the GAN must draw 28x28 one-channel digits")
        if meta.get("dataset") != self.source:
            raise ConfigError(
                f"glyphs={path}: a GAN of {meta.get('dataset')} for scenes of {self.source} digits"
            )
        kwargs = json.loads(meta.get("model_kwargs", "{}"))
        return g, kwargs, f"{meta.get('model')} (class-conditional, {meta.get('dataset')}) of {file}"

    def real_glyphs(self, cfg, per_class: int) -> torch.Tensor:
        """The first ``per_class`` training digits of each class of the scenes' source (uint8 (C, m, 28, 28))."""
        from deeper.data import load_dataset

        src = load_dataset(self.source, "train", data_dir=cfg.run.data_dir)
        images = src.images
        out = torch.zeros(self.num_classes, per_class, 28, 28, dtype=torch.uint8)
        for k in range(self.num_classes):
            pick = (src.labels == k).nonzero().flatten()
            if len(pick) == 0:
                raise ConfigError(f"no training digit of class {self.classes[k]} for the glyphs")
            out[k] = images[pick[torch.arange(per_class) % len(pick)], 0]
        return out

    def training_step(self, nets: Nets, batch, stepper, state) -> StepOutput:
        _, tokens, idx, pick = batch
        labels, centres, sizes = (t[idx, pick % t.shape[1]] for t in self.layouts[:3])
        counts = self.layouts[3][idx]
        with stepper.autocast():
            loss, parts = nets["G"](tokens, labels, centres, sizes, counts)
        stepper.update("G", loss, state)
        n = len(idx)
        sums = {"loss": loss.detach() * n, "class_loss": parts["class"],
                "place_loss": parts["x"] + parts["y"] + parts["size"]}  # fmt: skip
        return StepOutput(loss.detach(), sums, n)

    def imagine(self, net, tokens: torch.Tensor, shape) -> torch.Tensor:
        model = net.module if hasattr(net, "module") else net
        return model.generate(tokens, generator=self._eval_gen, temperature=self.args["temperature"])[0]
