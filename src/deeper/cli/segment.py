"""``deeper segment-preview``: test scenes with their true and predicted masks, and per-class IoU bars."""

from __future__ import annotations

import argparse

from deeper.cli import add_data_dir, add_json, command, png_output


@command("segment-preview", "draw segmentation models' masks on test scenes beside the truth; per-class IoU")
def configure_segment_preview(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "Each --weights (a run folder or model.safetensors of `deeper train --task segment`) adds a column\n"
        "of predicted masks; every model is scored on the same scenes. With --iou, a bar chart of each\n"
        "model's IoU per class over the first --eval scenes of the split.\n\n"
        "examples:\n"
        "  deeper segment-preview --weights runs/unet -o preview.png\n"
        "  deeper segment-preview --weights runs/fcn32s --weights runs/fcn16s --weights runs/fcn8s \\\n"
        "      --n 6 -o fcn.png --iou fcn_iou.png --json"
    )
    p.add_argument("--weights", action="append", required=True, metavar="FILE_OR_RUN",
                   help="weights of a segment run (repeat to compare models)")  # fmt: skip
    p.add_argument("-o", "--output", default="segment_preview.png", help="PNG file to write")
    p.add_argument("--iou", metavar="FILE.png", help="also draw the per-class IoU bars here")
    p.add_argument("--data", help="scene dataset (default: the one the first weights were trained on)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="which scenes")
    p.add_argument("--n", type=int, default=8, help="scenes to draw (1-32)")
    p.add_argument("--start", type=int, default=0, help="index of the first scene drawn")
    p.add_argument("--eval", type=int, default=2000, help="scenes scored for --iou and the JSON figures")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_data_dir(p)
    add_json(p)
    p.set_defaults(run=run_segment_preview)


def run_segment_preview(args, out) -> dict:
    import torch

    from deeper.analysis.segment_figures import draw_segmentations, plot_class_iou
    from deeper.errors import ConfigError
    from deeper.models.weights import load_weights, weights_file
    from deeper.runtime import resolve_device
    from deeper.tasks.segment import (
        SegmentationTask,
        class_names_of,
        load_split,
        segment_images,
        segmentation_scores,
    )  # fmt: skip

    output = png_output(args.output)
    if args.iou:
        png_output(args.iou, "--iou")
    if not 1 <= args.n <= 32:
        raise ConfigError(f"--n must be between 1 and 32, got {args.n}")
    if args.start < 0 or args.eval < 1:
        raise ConfigError("--start must be >= 0 and --eval >= 1")
    device = resolve_device(args.device)
    models, folders = [], []
    for w in args.weights:
        path = weights_file(w)
        _, meta = load_weights(path)
        if meta.get("task", "classify") != "segment":
            raise ConfigError(f"{path} holds weights of task {meta.get('task', 'classify')!r}, not segment")
        net, meta = SegmentationTask().load_model(path)
        models.append((str(meta.get("model", path.parent.name)), net.to(device).eval(), meta))
        folders.append(path.parent.name)
    data = args.data or str(models[0][2].get("dataset", "scenes-seg"))
    names = class_names_of(models[0][2])
    for name, _, meta in models:
        if len(class_names_of(meta)) != len(names):
            raise ConfigError(
                f"{name} predicts {len(class_names_of(meta))} classes, the first model {len(names)}"
            )
    count = max(args.start + args.n, args.eval)
    source = str(models[0][2].get("digits", ""))  # scenes of scikit-learn's digits, if trained on those
    ds = load_split(data, args.split, count, source=source, data_dir=args.data_dir)
    labels = _distinct([n for n, _, _ in models], folders)
    figures, ious, shown = {}, {}, []
    lo, hi = args.start, args.start + args.n
    for label, (_, net, _) in zip(labels, models):
        masks = segment_images(net, ds.float_images(range(count)))
        truth = ds.class_masks[: args.eval].long()
        k = len(names)
        idx = truth.reshape(-1) * k + torch.from_numpy(masks[: args.eval]).long().reshape(-1)
        scores = segmentation_scores(torch.bincount(idx, minlength=k * k).reshape(k, k))
        ious[label] = {n: (None if v != v else v) for n, v in zip(names, scores["iou"].tolist())}
        figures[label] = {s: float(scores[s]) for s in ("miou", "miou_digits", "pixel_accuracy")}
        shown.append((label, masks[lo:hi]))
    title = f"{data} {args.split} scenes {lo}-{hi - 1}; (mIoU of each scene)"
    draw_segmentations(
        ds.images[lo:hi, 0].numpy(),
        ds.class_masks[lo:hi].numpy(),
        shown,
        output,
        num_classes=len(names),
        title=title,
    )
    out.line(f"wrote {output}: {args.n} {data} {args.split} scenes, {len(models)} model(s)")
    for label, f in figures.items():
        out.line(
            f"{label}: mIoU {f['miou']:.4f}, without background {f['miou_digits']:.4f}, "
            f"pixel accuracy {f['pixel_accuracy']:.4f} ({min(args.eval, len(ds)):,} scenes)"
        )
    if args.iou:
        plot_class_iou(
            ious, args.iou, title=f"IoU per class, {min(args.eval, len(ds)):,} {data} {args.split} scenes"
        )
        out.line(f"wrote {args.iou}")
    return {"output": output, "iou_plot": args.iou, "data": data, "split": args.split,
            "scenes_scored": min(args.eval, len(ds)), "models": figures, "iou_per_class": ious}  # fmt: skip


def _distinct(names: list[str], folders: list[str]) -> list[str]:
    """The model names, told apart where several are the same: by their run folders' names when those
    differ (fcn8s in runs/fcn8s and runs/fcn8s-fine: fcn8s, fcn8s-fine), else numbered (unet, unet #2)."""
    out = []
    for name, folder in zip(names, folders):
        same = [f for n, f in zip(names, folders) if n == name]
        out.append(folder if len(same) > 1 and len(set(same)) == len(same) else name)
    seen: dict[str, int] = {}
    for i, label in enumerate(out):
        seen[label] = seen.get(label, 0) + 1
        out[i] = label if seen[label] == 1 else f"{label} #{seen[label]}"
    return out
