"""Image captioning of digit scenes: a CNN reads the scene, an LSTM writes a sentence about it.

    deeper train --task caption --model nic --data scenes-cap
    deeper train --task caption --model show-attend-tell --data scenes-cap-hard --task-arg beam=3
    deeper predict --weights runs/caption-nic-scenes-cap-... scene.png --beam 3 --json

The models are the ``caption`` family (:mod:`deeper.models.caption`: NIC and Show, Attend
and Tell); the data are the ``scenes-*`` datasets, six captions per scene from the
grammar of :mod:`deeper.data.captions` (docs/scenes.md).

- **Vocabulary**: the words of the training captions (``:`` and ``,`` are words), after
  ``<pad>``, ``<start>``, ``<end>`` and ``<unk>``; its size is the model's
  ``num_classes``, and the words are saved with the weights (metadata ``vocab``).
- **Training**: every scene of a batch is encoded once and its six captions are all
  teacher-forced through the decoder (the input at step t is word t - 1 of the true
  caption, the target word t; the first input is ``<start>``, the last target ``<end>``).
  The loss is the cross-entropy of every word (padding left out), with
  ``--label-smoothing``; attention models add ``alpha_c`` times the doubly stochastic
  penalty, the mean over regions of ``(1 - sum_t alpha_ti)^2``.
- **Metrics** of val and test: ``loss`` and ``token_accuracy`` (teacher-forced, against
  every reference caption), then the decoded captions (greedy, or a beam search of width
  ``beam``, at most ``max_len`` tokens) scored against all six references:
  ``bleu1``-``bleu4`` (corpus BLEU), ``cider`` (CIDEr-D) and ``meaning_accuracy``, the
  share of captions that parse in the grammar and are true of their scene (the digits
  named, the counts, the order and the relations stated are the scene's; the primary
  metric).  At the end of a run, ``test_meaning_by_form`` says how often the model chose
  each form of sentence and how often it was right in it.
- **Figures** (``figures=true``): ``captions.png`` (test scenes with their greedy captions,
  green when true of the scene, red when not) and, for attention models,
  ``attention.png`` (where the decoder looked at each word of a test scene's caption).
- **Predict**: any grey image; dark ink on a light background is inverted, and the image is
  scaled to fit the training scene size (aspect kept, black borders).  The answer is the
  best caption of a beam search (``--beam K``, default 3; 1 is greedy) and the K
  captions found with their log probabilities; with ``-o DIR`` attention models also
  draw ``NAME_attention.png``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deeper.data.captions import CaptionError, caption_holds, meaning_holds, parse_caption
from deeper.data.loader import BatchLoader
from deeper.errors import CheckpointError, ConfigError
from deeper.models.caption.decode import Hypothesis, beam_search, greedy
from deeper.models.caption.vocab import PAD_ID, Vocabulary
from deeper.runtime import notice
from deeper.tasks.base import SCENE_OPTIONS, Metric, Nets, StepOutput, Task, TaskOption, register_task
from deeper.train.build import BuildContext, Built
from deeper.train.parts import Parts

#: evaluation batches are capped at this many scenes (six captions each go through the decoder)
EVAL_BATCH = 250
FORMS = ("count", "order", "tally", "relation", "extreme", "only", "exists")


# ----------------------------------------------------------------------------- data


@dataclass
class CaptionBatch:
    """Scenes and their captions: ``images`` (B, C, H, W) in [0, 1]; ``tokens`` (B*m, T) the m captions of
    each scene as ids (``<start>`` ... ``<end>``, padded); ``index`` (B*m,) the scene of each caption row;
    ``references`` the captions as text; ``boxes``, ``labels``, ``counts`` the scenes' objects."""

    images: torch.Tensor
    tokens: torch.Tensor
    index: torch.Tensor
    references: list[tuple[str, ...]]
    boxes: torch.Tensor
    labels: torch.Tensor
    counts: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]


class CaptionLoader(BatchLoader):
    """:class:`CaptionBatch` batches of a :class:`~deeper.data.scenes.SceneDataset` whose captions are
    ``tokens`` (N, m, T) (on the dataset's device); order, skipping and sharding are :class:`BatchLoader`'s.

    ``per_scene`` (default: all m): how many of a scene's captions a batch carries; scene ``i``
    in epoch ``e`` carries captions ``(i + e * per_scene + j) % m`` for ``j < per_scene``, so
    the forms rotate over the scenes and the epochs (a function of the epoch: resumable)."""

    def __init__(
        self, dataset, batch_size: int, *, tokens: torch.Tensor, per_scene: int | None = None, **kwargs
    ):
        super().__init__(dataset, batch_size, **kwargs)
        if tokens.shape[0] != len(dataset):
            raise ValueError(f"{tokens.shape[0]} caption lists for {len(dataset)} scenes")
        self.tokens = tokens.to(dataset.device)
        m = tokens.shape[1]
        self.per_scene = m if not per_scene else min(int(per_scene), m)

    def batch(self, sel: torch.Tensor) -> CaptionBatch:
        ds = self.dataset
        tok = self.tokens[sel]
        m = tok.shape[1]
        if self.per_scene < m:
            j = torch.arange(self.per_scene, device=tok.device)
            which = (sel[:, None] + self.epoch * self.per_scene + j[None, :]) % m
            tok = tok.gather(1, which[..., None].expand(-1, -1, tok.shape[2]))
        b, m, t = tok.shape
        index = torch.arange(b, device=tok.device).repeat_interleave(m)
        refs = [ds.captions[i] for i in sel.tolist()]
        images = self.images(sel)
        if self.transform is not None:  # augmentation that keeps the captions true (see CAPTION_AUGMENT)
            images, _ = self.transform(images, None)
        return CaptionBatch(images, tok.reshape(b * m, t), index, refs, ds.boxes[sel], ds.labels[sel],
                            ds.counts[sel])  # fmt: skip


def caption_tokens(vocab: Vocabulary, captions, length: int | None = None) -> torch.Tensor:
    """(N, m, T) ids of the m captions of each of N scenes (T: the longest, or ``length``)."""
    m = len(captions[0]) if captions else 0
    if any(len(c) != m for c in captions):
        raise ConfigError("every scene needs the same number of captions")
    flat = vocab.encode([c for caps in captions for c in caps], length)
    return flat.reshape(len(captions), m, -1)


def load_split(data: str, split: str, n: int | None, *, source: str = "", data_dir=None):
    """``split`` scenes of dataset ``data`` (``source="digits"``: made from scikit-learn's bundled digits)."""
    from deeper.data import load_dataset
    from deeper.data.scenes import load_scenes

    digits = load_dataset("digits", "test" if split == "test" else "train") if source == "digits" else None
    return load_scenes(data, split, n=n, data_dir=data_dir, digits=digits)


def _start_encoder(model: nn.Module, weights: str) -> None:
    """The encoder's convolutions from a classifier's weights (``encoder_weights``): one-line errors."""
    from deeper.models.weights import load_weights

    state, _ = load_weights(weights)
    try:
        n = model.encoder.load_features(state, source=weights)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    notice(f"encoder: {n} tensors from {weights}")


#: the --augment ops a scene's captions stay true under: shifts of the whole scene (order and relations are
#: relative), small elastic distortions of the strokes, brightness and contrast; not rotations and rescales
#: (they move boxes across each other), flips (left becomes right) or erasing (a digit may vanish)
CAPTION_AUGMENT = ("translate", "crop", "elastic", "elastic_sigma", "brightness", "contrast")


def _check_augment(cfg) -> None:
    """``--augment`` names only ops that keep the captions true (the engine refuses the other options of
    classification before the task builds)."""
    from deeper.data.augment import parse_augment

    if bad := [op for op in parse_augment(cfg.regularize.augment, cfg.data) if op not in CAPTION_AUGMENT]:
        raise ConfigError(
            f"task 'caption' takes only --augment ops that keep a scene's captions true "
            f"({', '.join(o for o in CAPTION_AUGMENT if o != 'elastic_sigma')}), not {', '.join(bad)}"
        )


# ----------------------------------------------------------------------------- the task


@register_task
class CaptionTask(Task):
    name = "caption"
    description = "image captioning of digit scenes: CNN encoder + LSTM decoder (NIC, show-attend-tell); BLEU, CIDEr-D, meaning"
    takes = frozenset({"--augment"})  # (the ops of CAPTION_AUGMENT)
    metrics = (
        Metric("loss", higher_is_better=False),
        Metric("token_accuracy", label="tok"),
        Metric("bleu1", label=""),
        Metric("bleu2", label=""),
        Metric("bleu3", label=""),
        Metric("bleu4", label="BLEU-4"),
        Metric("cider", label="CIDEr", fmt=".3f"),
        Metric("meaning_accuracy", label="meaning"),
    )
    primary = "meaning_accuracy"
    data_kind = "scenes"
    model_family = "caption"
    dry_run = {
        "data": "scenes-cap",
        "model": "nic",
        "model_kwargs": {"width": 0.25, "embed": 16, "hidden": 32, "grid": 4},
        "subset": 48,
        "batch_size": 16,
        "eval_batch_size": 16,
        "epochs": 2,
        "task_args": {"source": "digits", "val_scenes": 16, "test_scenes": 16, "figures": False},
    }
    options = {
        **SCENE_OPTIONS,
        "beam": TaskOption(1, "beam width of the val/test captions (1: greedy decoding)", low=1, high=64),
        "max_len": TaskOption(24, "longest caption decoded, in tokens (with <end>)", low=1, high=256),
        "alpha_c": TaskOption(1.0, "weight of the doubly stochastic attention penalty (attention models)",
                              low=0.0, high=100.0),
        "captions": TaskOption(0, "captions of each scene trained on per step (0: all six; fewer: they rotate "
                               "over the scenes and epochs)", low=0, high=64),
        "threads": TaskOption(1, "torch's CPU threads in this process (0: leave torch's default); one is the "
                              "fastest on a busy 2-core machine", low=0, high=256),
        "encoder_weights": TaskOption("", "a classifier's weights or run folder (the encoder's network, width "
                                      "and norm, e.g. trained on MNIST) whose convolutions start the encoder"),
        "figures": TaskOption(True, "draw captions.png (and attention.png) into the run folder"),
        "preview": TaskOption(12, "test scenes drawn in captions.png", low=1, high=64),
    }  # fmt: skip

    def __init__(self, **task_args):
        super().__init__(**task_args)
        self.vocab: Vocabulary | None = None  # set by build or load_model
        self.classes: tuple[str, ...] = tuple(str(i) for i in range(10))
        self.label_smoothing = 0.0

    # ---- building
    def build(self, ctx: BuildContext) -> Built:
        from deeper.data import get_dataset_spec
        from deeper.models import create_model, get_model_entry

        cfg = ctx.cfg
        get_model_entry(cfg.model)  # fail on a bad name before making any scenes
        _check_augment(cfg)
        spec = get_dataset_spec(cfg.data)
        kwargs = dict(cfg.model_kwargs)
        if cfg.regularize.dropout is not None:
            kwargs["dropout"] = cfg.regularize.dropout
        c, h, w = spec.image_shape
        create_model(cfg.model, num_classes=8, in_chans=c, **kwargs)  # the options checked before the data
        a = self.args
        if ctx.device.type == "cpu" and a["threads"]:
            torch.set_num_threads(a["threads"])
        where = {"source": a["source"], "data_dir": cfg.run.data_dir}
        train = load_split(cfg.data, "train", cfg.sampling.subset, **where)
        val = (
            load_split(cfg.data, "val", a["val_scenes"] or None, **where)
            if cfg.sampling.val_size != 0
            else None
        )
        test = load_split(cfg.data, "test", a["test_scenes"] or None, **where)
        self.vocab = vocab = Vocabulary.build(c for caps in train.captions for c in caps)
        self.classes = tuple(spec.classes)
        self.label_smoothing = cfg.regularize.label_smoothing or 0.0
        model = create_model(cfg.model, num_classes=len(vocab), in_chans=c, **kwargs)
        if a["encoder_weights"]:
            _start_encoder(model, a["encoder_weights"])
        channels_last = ctx.channels_last(model)
        model = ctx.place(model, channels_last=channels_last)
        dev = ctx.device

        def loader(ds, bs, **kw):
            return CaptionLoader(ds.to(dev), bs, tokens=caption_tokens(vocab, ds.captions),
                                 channels_last=channels_last, **kw)  # fmt: skip

        from deeper.train.regularize import build_train_transform

        train_loader = loader(train, ctx.batch_size, shuffle=True, seed=cfg.seed, rank=ctx.rank,
                              world_size=ctx.world_size, per_scene=a["captions"],
                              transform=build_train_transform(cfg, len(vocab), dev))  # fmt: skip
        eval_bs = min(cfg.sampling.eval_batch_size, EVAL_BATCH)
        val_loader = loader(val, eval_bs) if val is not None else None
        test_loader = loader(test, eval_bs)
        opt, sched = ctx.optimizer(model.parameters(), train_loader.steps_per_epoch)
        metadata = {
            "model": cfg.model,
            "num_classes": len(vocab),
            "in_chans": c,
            "dataset": cfg.data,
            "classes": list(spec.classes),
            "scene_size": [h, w],
            "vocab": vocab.to_json(),
            "train_scenes": len(train),
            **({"model_kwargs": kwargs} if kwargs else {}),
            **({"digits": a["source"]} if a["source"] else {}),
        }
        return Built(Parts.single(model, opt, sched), train_loader, val_loader, test_loader, metadata)

    # ---- steps
    def _forced(self, net: nn.Module, batch: CaptionBatch, smoothing: float):
        """Teacher forcing: the loss of every word of every caption, and the sums of the step."""
        inputs, target = batch.tokens[:, :-1], batch.tokens[:, 1:]
        logits, alphas = net(batch.images, inputs, batch.index)
        scores = logits.float()
        loss = F.cross_entropy(scores.reshape(-1, scores.shape[-1]), target.reshape(-1), ignore_index=PAD_ID,
                               label_smoothing=smoothing)  # fmt: skip
        mask = target != PAD_ID
        if alphas is not None and self.args["alpha_c"] > 0:
            seen = (alphas.float() * mask[..., None]).sum(1)  # (N, L): each region's attention over the words
            loss = loss + self.args["alpha_c"] * ((1.0 - seen) ** 2).mean()
        n = len(batch)
        sums = {
            "loss": loss.detach() * n,
            "tokens_correct": ((scores.argmax(-1) == target) & mask).sum(),
            "tokens": mask.sum(),
        }
        return loss, sums, logits

    def loss(self, nets: Nets, batch: CaptionBatch) -> StepOutput:
        loss, sums, logits = self._forced(nets["net"], batch, self.label_smoothing)
        return StepOutput(loss, sums, len(batch), logits)

    def evaluation_step(self, nets: Nets, batch: CaptionBatch) -> StepOutput:
        net = nets["net"]
        loss, sums, _ = self._forced(net, batch, 0.0)
        texts = [self.text(h) for h in self.decode(net, batch.images)]
        holds = [
            caption_holds(
                t, batch.boxes[i, :k].cpu().numpy(), batch.labels[i, :k].cpu().numpy(), self.classes
            )
            for i, (t, k) in enumerate(zip(texts, batch.counts.tolist()))
        ]
        sums["meaning"] = torch.tensor(float(sum(holds)), dtype=torch.float64)
        return StepOutput(loss, sums, len(batch), None, texts, batch.references)

    def summarize(self, sums: dict[str, float], count: int) -> dict[str, float]:
        if count == 0:
            return {}
        out = {"loss": sums["loss"] / count}
        if sums.get("tokens"):
            out["token_accuracy"] = sums["tokens_correct"] / sums["tokens"]
        if "meaning" in sums:
            out["meaning_accuracy"] = sums["meaning"] / count
        return out

    def eval_metrics(self, split: str) -> dict:
        from deeper.models.caption.scores import Bleu, CiderD

        return {**{f"bleu{n}": Bleu(n) for n in range(1, 5)}, "cider": CiderD()}

    # ---- decoding
    def decode(self, net: nn.Module, images: torch.Tensor, beam: int | None = None) -> list[Hypothesis]:
        """The best caption of each image: greedy (``beam`` 1) or the first of a beam search."""
        k = self.args["beam"] if beam is None else beam
        if k == 1:
            return greedy(net, images, self.args["max_len"])
        return [h[0] for h in beam_search(net, images, k, self.args["max_len"])]

    def text(self, hyp: Hypothesis) -> str:
        return self.vocab.decode(hyp.ids)

    # ---- the end of a run: what the model says, by form of sentence, and the figures
    def finish(self, run, run_dir, test: dict) -> dict:
        if run.test_loader is None or self.vocab is None:
            return {}
        ds = run.test_loader.dataset
        net = run.final_model
        texts, first = self.caption_dataset(net, ds)
        by_form = meaning_by_form(texts, ds, self.classes)
        holds = by_form.pop("_holds")
        if self.args["figures"]:
            from deeper.analysis.caption_figures import draw_attention, draw_captions

            n = min(self.args["preview"], len(ds))
            title = (f"{run.model_name} on {run.data_name}: test BLEU-4 {test.get('bleu4', float('nan')):.3f}, "
                     f"meaning {test.get('meaning_accuracy', float('nan')):.3f}")  # fmt: skip
            draw_captions(ds.images[:n, 0].cpu().numpy(), texts[:n], holds[:n], Path(run_dir) / "captions.png",
                          title=title)  # fmt: skip
            if first is not None and first.attention is not None:
                g = net.grid
                draw_attention(ds.images[0, 0].cpu().numpy(), self.words(first),
                               first.attention.reshape(-1, g, g).numpy(), Path(run_dir) / "attention.png",
                               title=f"{run.model_name}: where it looks at each word")  # fmt: skip
        return {"test_meaning_by_form": by_form, "test_examples": texts[:5]}

    @torch.inference_mode()
    def caption_dataset(self, net: nn.Module, ds, *, beam: int | None = None, batch: int = EVAL_BATCH):
        """``(captions of every scene of ds, the first scene's Hypothesis)``, in evaluation mode."""
        was = net.training
        net.eval()
        try:
            p = next(net.parameters())
            texts, first = [], None
            for i in range(0, len(ds), batch):
                x = ds.float_images(range(i, min(i + batch, len(ds)))).to(device=p.device, dtype=p.dtype)
                hyps = self.decode(net, x, beam)
                first = hyps[0] if first is None else first
                texts += [self.text(h) for h in hyps]
            return texts, first
        finally:
            net.train(was)

    def words(self, hyp: Hypothesis) -> list[str]:
        """The words of ``hyp``, one per decoding step (``<end>`` last when it ended)."""
        return [self.vocab.words[i] for i in hyp.ids] + (["<end>"] if hyp.ended else [])

    # ---- using trained weights
    def load_model(self, path, name: str | None = None):
        from deeper.models.weights import model_from_weights

        model, meta = model_from_weights(path, name)
        if "vocab" not in meta:
            raise CheckpointError(f"{path}: no vocabulary in the metadata (not captioning weights?)")
        self.vocab = Vocabulary.from_json(meta["vocab"], str(path))
        if len(self.vocab) != getattr(model, "num_classes", len(self.vocab)):
            raise CheckpointError(
                f"{path}: the vocabulary has {len(self.vocab)} words, the model {model.num_classes}"
            )
        self.classes = tuple(_json_list(meta.get("classes"), [str(i) for i in range(10)]))
        return model, meta

    @torch.inference_mode()
    def predict(self, model: nn.Module, meta: dict, images: list, *, device: torch.device, beam: int | None = None,
                out_dir=None, **_) -> list[dict]:  # fmt: skip
        from deeper.tasks.segment import read_scene_image

        k = 3 if beam is None else int(beam)
        if not 1 <= k <= 64:
            raise ConfigError(f"--beam must be an integer in [1, 64], got {k}")
        if self.vocab is None:
            self.vocab = Vocabulary.from_json(meta.get("vocab", "null"))
        size = tuple(int(v) for v in _json_list(meta.get("scene_size"), [64, 64]))
        in_chans = int(meta.get("in_chans", 1))
        out = Path(out_dir) if out_dir else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        answers, used = [], set()
        for path in images:
            grey, inverted = read_scene_image(path, in_chans)
            x = letterbox(torch.from_numpy(grey), size).to(device)[None, None]
            hyps = beam_search(model, x, k, self.args["max_len"])[0]
            captions = [[self.text(h), round(h.logprob, 4)] for h in hyps]
            answer = {"image": str(path), "caption": captions[0][0], "beam": captions,
                      **({"inverted": True} if inverted else {})}  # fmt: skip
            if out is not None and hyps[0].attention is not None:
                from deeper.analysis.caption_figures import draw_attention

                stem = _unique_stem(Path(path).stem, used)
                words = self.words(hyps[0])
                g = model.grid
                target = out / f"{stem}_attention.png"
                draw_attention(x[0, 0].cpu().numpy(), words, hyps[0].attention.reshape(-1, g, g).numpy(), target,
                               title=captions[0][0])  # fmt: skip
                answer["attention"] = str(target)
            answers.append(answer)
        return answers

    def describe_prediction(self, answer: dict, **_) -> str:
        where = f" -> {answer['attention']}" if answer.get("attention") else ""
        return f"{answer['image']}: {answer['caption']}{where}"


# ----------------------------------------------------------------------------- helpers


def score_captions(texts: list[str], ds, classes) -> dict[str, float]:
    """BLEU-1..4, CIDEr-D and the meaning accuracy of ``texts``, one caption per scene of ``ds``, against
    its six references (what a run reports for its test split, for any decoding)."""
    from deeper.models.caption.scores import Bleu, cider_d
    from deeper.models.caption.vocab import spaced

    refs = [list(c) for c in ds.captions[: len(texts)]]
    out = {}
    for n in range(1, 5):
        bleu = Bleu(n)
        bleu.update(texts, refs)
        out[f"bleu{n}"] = float(bleu.compute())
    out["cider"] = cider_d([spaced(t) for t in texts], [[spaced(r) for r in rs] for rs in refs])[0]
    holds = meaning_by_form(texts, ds, classes)["_holds"]
    out["meaning_accuracy"] = sum(holds) / max(1, len(holds))
    return out


def meaning_by_form(texts: list[str], ds, classes) -> dict:
    """How often each form of sentence was said (``share``) and how often it was true (``accuracy``);
    ``outside_grammar``: the share of captions that do not parse; ``_holds``: per caption, true or not."""
    said, right, holds = Counter(), Counter(), []
    for i, text in enumerate(texts):
        k = int(ds.counts[i])
        try:
            meaning = parse_caption(text, classes)
        except CaptionError:
            said["outside_grammar"] += 1
            holds.append(False)
            continue
        ok = meaning_holds(meaning, ds.boxes[i, :k].cpu().numpy(), ds.labels[i, :k].cpu().numpy())
        said[meaning.form] += 1
        right[meaning.form] += ok
        holds.append(ok)
    n = max(1, len(texts))
    out: dict = {f: {"share": said[f] / n, "accuracy": right[f] / said[f]} for f in FORMS if said[f]}
    out["outside_grammar"] = said["outside_grammar"] / n
    out["_holds"] = holds
    return out


def letterbox(grey: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``grey`` (H, W) scaled to fit ``size`` (aspect kept, antialiased), centred on black."""
    h, w = grey.shape
    th, tw = size
    if (h, w) == (th, tw):
        return grey
    s = min(th / h, tw / w)
    nh, nw = max(1, min(th, round(h * s))), max(1, min(tw, round(w * s)))
    scaled = F.interpolate(grey[None, None].float(), size=(nh, nw), mode="bilinear", antialias=True,
                           align_corners=False)[0, 0]  # fmt: skip
    out = torch.zeros(th, tw, dtype=scaled.dtype)
    top, left = (th - nh) // 2, (tw - nw) // 2
    out[top : top + nh, left : left + nw] = scaled.clamp(0, 1)
    return out


def _json_list(value, default: list) -> list:
    if value is None:
        return default
    try:
        out = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        raise CheckpointError(f"unreadable metadata entry {value!r}") from None
    if not isinstance(out, list):
        raise CheckpointError(f"metadata entry {value!r} is not a list")
    return out


def _unique_stem(stem: str, used: set[str]) -> str:
    name, k = stem, 1
    while name in used:
        k += 1
        name = f"{stem}-{k}"
    used.add(name)
    return name
