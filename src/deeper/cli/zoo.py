"""``deeper summary``, ``deeper heatmap`` and ``deeper finetune`` (the model zoo, issue 3)."""

from __future__ import annotations

import argparse
import json

from deeper.cli import add_data_dir, add_json, command, png_output

S = argparse.SUPPRESS


# --- summary --------------------------------------------------------------------------------------------


@command(
    "summary", "layer table of a model: output shapes, parameters, MACs, receptive field, stride, shares"
)
def configure_summary(p: argparse.ArgumentParser) -> None:
    from deeper.cli import parse_kv

    p.epilog = (
        "MACs are multiply-accumulates per image (torch.utils.flop_counter's FLOPs / 2) of convolutions,\n"
        "affine layers and attention; RF is the receptive field in input pixels and stride the product of\n"
        "the strides so far ('all': after a flatten or global pool). A '*' marks layers where\n"
        "(H + 2P - FH) / S is not an integer and PyTorch drops the last rows/columns.\n\n"
        "examples:\n"
        "  deeper summary alexnet                       # 3x224x224, 1000 classes: torchvision's AlexNet + LRN\n"
        "  deeper summary resnet18 --input 1x28x28      # the small-image stem, 10 classes\n"
        "  deeper summary vgg16 --by-type --plot vgg16.png --json"
    )
    p.add_argument("model", help="registered model name (see `deeper models`)")
    p.add_argument("--input", metavar="CxHxW", help="input shape [the model's design input, e.g. 3x224x224]")
    p.add_argument(
        "--num-classes", type=int, metavar="K", help="classifier outputs [1000 for 224x224 inputs, else 10]"
    )
    p.add_argument(
        "--model-arg", dest="model_kwargs", action="append", type=parse_kv, default=[], metavar="KEY=VALUE",
        help="model option, repeatable (e.g. aux_logits=true)",
    )  # fmt: skip
    p.add_argument("--by-type", action="store_true", help="print only the totals per layer type")
    p.add_argument("--plot", metavar="FILE.png", help="also draw each layer's share of parameters and MACs")
    add_json(p)
    p.set_defaults(run=run_summary)


def run_summary(args, out) -> dict:
    from deeper.analysis.summary import parse_shape, plot_summary, summarize_registered
    from deeper.errors import ConfigError

    if args.num_classes is not None and args.num_classes < 1:
        raise ConfigError(f"--num-classes must be at least 1, got {args.num_classes}")
    if args.plot:
        png_output(args.plot)
    shape = parse_shape(args.input) if args.input else None
    s = summarize_registered(args.model, shape, num_classes=args.num_classes, **dict(args.model_kwargs))
    text = s.table()
    if args.by_type:
        text = text.split("\n\n", 1)[1]
    out.line(text)
    result = s.to_dict()
    if args.plot:
        plot_summary(s, args.plot)
        out.line(f"chart: {args.plot}")
        result["plot"] = args.plot
    return result


# --- heatmap --------------------------------------------------------------------------------------------


@command(
    "heatmap", "convolutionalize a trained classifier and draw its class heat maps over a grid of test images"
)
def configure_heatmap(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "The affine head becomes equivalent convolutions (FCN), so the network slides over a canvas of\n"
        "several test images and outputs one class-probability map per class. Green labels: tiles read\n"
        "correctly from the map, red: wrongly.\n\n"
        "example:\n"
        "  deeper heatmap --weights runs/book/model.safetensors --data mnist --grid 2x4 -o heatmap.png"
    )
    p.add_argument(
        "--weights",
        required=True,
        metavar="FILE",
        help="a .safetensors file written by deeper (or a run folder)",
    )
    p.add_argument("--model", help="registered model name (default: the one recorded in the weights file)")
    p.add_argument("--data", default="mnist", help="dataset whose test images fill the canvas")
    add_data_dir(p)
    p.add_argument("--grid", default="2x4", metavar="ROWSxCOLS", help="tiles of the canvas")
    p.add_argument("--seed", type=int, default=0, help="which test images are drawn")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("-o", "--output", required=True, metavar="FILE.png", help="where to write the picture")
    add_json(p)
    p.set_defaults(run=run_heatmap)


def _grid(text: str) -> tuple[int, int]:
    from deeper.errors import ConfigError

    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--grid must look like ROWSxCOLS, e.g. 2x4, got {text!r}") from None
    if rows < 1 or cols < 1 or rows * cols > 400:
        raise ConfigError(f"--grid needs 1 to 400 tiles, got {text!r}")
    return rows, cols


def run_heatmap(args, out) -> dict:
    from deeper.analysis.heatmap import class_heatmap, digit_canvas, plot_heatmap, read_cells
    from deeper.data import load_dataset
    from deeper.errors import ConfigError
    from deeper.inference import check_compatible, load_for_inference
    from deeper.models import convolutionalize
    from deeper.models.weights import weights_file

    png_output(args.output)
    rows, cols = _grid(args.grid)
    weights = weights_file(args.weights)
    net, meta = load_for_inference(weights, args.model, device=args.device)
    check_compatible(meta, args.data, weights)
    ds = load_dataset(args.data, "test", data_dir=args.data_dir)
    c, h, w = ds.image_shape
    size = int(meta.get("img_size", h))
    if (h, w) != (size, size):
        raise ConfigError(f"{weights} was trained on {size}x{size} images but {args.data} has {h}x{w}")
    fcn = convolutionalize(net, (c, h, w))
    canvas, true, idx = digit_canvas(ds, rows, cols, seed=args.seed)
    probs = class_heatmap(fcn, canvas)
    stride = fcn.stride()
    read = read_cells(probs, stride, (h, w), (rows, cols))
    correct = int((read == true).sum())
    name = meta.get("model", args.model)
    plot_heatmap(
        canvas, probs, stride, (h, w), args.output, classes=ds.classes, read=read, true=true,
        title=f"{name}, convolutionalized: {correct}/{rows * cols} tiles read correctly "
        f"({probs.shape[1]}x{probs.shape[2]} map, stride {stride})",
    )  # fmt: skip
    out.line(
        f"{name} as a fully convolutional net: {c}x{canvas.shape[1]}x{canvas.shape[2]} canvas -> "
        f"{probs.shape[0]}x{probs.shape[1]}x{probs.shape[2]} class map (stride {stride} px); "
        f"read {correct}/{rows * cols} tiles correctly; picture: {args.output}"
    )
    return {
        "model": name,
        "weights": str(weights),
        "canvas_shape": list(canvas.shape),
        "map_shape": list(probs.shape),
        "stride": stride,
        "indices": idx.tolist(),
        "true": true.tolist(),
        "read": read.tolist(),
        "correct": correct,
        "tiles": rows * cols,
        "output": args.output,
    }


# --- finetune -------------------------------------------------------------------------------------------


@command(
    "finetune", "transfer learning: start from a trained model, new classifier, train on another dataset"
)
def configure_finetune(p: argparse.ArgumentParser) -> None:
    from deeper.cli.train import configure as configure_train
    from deeper.train import RECIPES

    configure_train(p)
    p.add_argument(
        "--from", dest="init_from", default=S, metavar="RUN_OR_WEIGHTS",
        help="the trained model: a run folder or its model.safetensors (same as --init-from)",
    )  # fmt: skip
    p.epilog = (
        "The model (and its options) come from the weights' metadata; every weight is copied except the\n"
        "classifier, which is replaced (reset_classifier) for the new dataset's classes. --freeze features\n"
        "trains the new classifier alone (frozen batch-norm layers keep their statistics). All options of\n"
        "`deeper train` apply; with a small --subset, raise --epochs.\n\n"
        "recipes:\n"
        + "\n".join(
            f"  {name:6s} " + ", ".join(f"{k}={v}" for k, v in r.items()) for name, r in RECIPES.items()
        )
        + "\n\nexamples:\n"
        "  deeper train --data mnist --out runs/mnist\n"
        "  deeper finetune --from runs/mnist --data fashion-mnist --subset 500 --epochs 30 --out runs/ft\n"
        "  deeper finetune --from runs/mnist --data digits --freeze features --epochs 20 --json"
    )
    p.set_defaults(run=run_finetune)


def run_finetune(args, out) -> dict | None:
    from deeper.cli.train import run as run_train
    from deeper.errors import ConfigError
    from deeper.models.weights import load_weights, weights_file

    if not getattr(args, "resume", None):
        init_from = getattr(args, "init_from", None)
        if init_from is None:
            raise ConfigError("--from is required: the trained run folder or weights file to start from")
        path = weights_file(init_from)
        _, meta = load_weights(path)
        recorded = meta.get("model")
        given = getattr(args, "model", None)
        if given is None and recorded is None:
            raise ConfigError(f"{path} does not record its model; pass --model")
        if given is not None and recorded is not None and given != recorded:
            raise ConfigError(f"{path} holds weights for model {recorded!r}, not {given!r}")
        args.model = given or recorded
        args.init_from = str(path)
        if "model_kwargs" in meta:  # rebuild the same network (e.g. norm=batch), user options win
            try:
                saved = json.loads(meta["model_kwargs"])
            except ValueError:
                raise ConfigError(f"{path}: unreadable model_kwargs in the metadata") from None
            args.model_kwargs = [*saved.items(), *getattr(args, "model_kwargs", [])]
    result = run_train(args, out)
    return result
