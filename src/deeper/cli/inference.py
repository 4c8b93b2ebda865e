"""``deeper eval``, ``predict``, ``misclassified`` and ``convert-book-weights``."""

from __future__ import annotations

import argparse
from pathlib import Path

from deeper.cli import add_data_dir, add_gallery_size, add_json, check_gallery_size, command, png_output


def _common(p: argparse.ArgumentParser, *, data: bool = True) -> None:
    p.add_argument("--model", help="registered model name (default: the one recorded in the weights file)")
    p.add_argument(
        "--weights", required=True, metavar="FILE_OR_RUN",
        help="a .safetensors file written by deeper (trained, quantized or pruned), or its run folder",
    )  # fmt: skip
    if data:
        p.add_argument("--data", help="dataset to evaluate on (default: the one recorded in the weights)")
        add_data_dir(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


@command("eval", "evaluate trained weights on a dataset's test split, in a chosen precision")
def configure_eval(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "examples:\n  deeper eval --weights runs/mnist/model.safetensors --data mnist --dtype float16 --json\n"
        "  deeper eval --weights int8.safetensors          # written by deeper quantize (or deeper prune --save)"
    )
    from deeper.inference import DTYPES

    _common(p)
    p.add_argument("--dtype", default="float32", choices=list(DTYPES), help="precision of weights and inputs")
    p.add_argument("--split", default="test", choices=["train", "test"], help="which split to score")
    p.add_argument("--batch-size", type=int, default=1000, help="images per forward pass")
    p.add_argument(
        "--engine", default="torch", choices=["torch", "numpy", "cupy"],
        help="torch, or the from-scratch NumPy engine (cupy: on a CUDA GPU; --dtype float64/32/16)",
    )  # fmt: skip
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="progress bar [on when stderr is a terminal]",
    )  # fmt: skip
    add_json(p)
    p.set_defaults(run=run_eval)


def data_of(args) -> str:
    """``--data``, or the dataset the weights record (a model is scored on what it learnt unless told)."""
    if args.data:
        return args.data
    from deeper.errors import ConfigError
    from deeper.models.weights import load_weights, weights_file

    path = Path(args.weights)
    _, meta = load_weights(weights_file(path) if path.is_dir() else path)
    if not meta.get("dataset"):
        raise ConfigError(f"{args.weights}: the weights do not record their dataset; pass --data")
    return meta["dataset"]


def run_eval(args, out) -> dict:
    from deeper.inference import evaluate_weights

    args.data = data_of(args)

    if args.engine != "torch":  # the from-scratch engine (issue 5): its device is its array module
        from deeper.runtime import precision_notice
        from deeper.scratch.trainer import evaluate_weights_scratch

        if args.engine == "numpy":
            precision_notice(args.dtype, "cpu", engine="numpy")

        r = evaluate_weights_scratch(
            args.weights, args.data, model=args.model, dtype=args.dtype, split=args.split,
            batch_size=args.batch_size, data_dir=args.data_dir, engine=args.engine,
        )  # fmt: skip
    else:
        r = evaluate_weights(
            args.weights, args.data, model=args.model, dtype=args.dtype, split=args.split,
            device=args.device, batch_size=args.batch_size, data_dir=args.data_dir, progress=args.progress,
        )  # fmt: skip
    acc = r.get("test_accuracy", r.get(f"{args.split}_accuracy"))
    out.line(
        f"{r['model']} on {args.data}/{args.split} ({r['images']:,} images, {args.dtype}): accuracy {acc:.4f}, loss {r['loss']:.4f}"
    )
    return r


@command("predict", "answer for image files with trained weights, in the terms of the task that trained them")
def configure_predict(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "The task (classification, detection, ...) is read from the weights. Images of any size and format;\n"
        "for classification, digits are prepared as MNIST was.\n\n"
        "examples:\n  deeper predict --weights runs/mnist digit.png --top 3\n"
        "  deeper predict --weights runs/mnist/model.safetensors a.png b.jpg --json\n"
        "  deeper predict --weights runs/caption-nic-scenes-cap-... scene.png --beam 5 --json"
    )
    p.add_argument("--model", help="registered model name (default: the one recorded in the weights file)")
    p.add_argument(
        "--weights",
        required=True,
        metavar="FILE_OR_RUN",
        help="a .safetensors file written by deeper (trained, quantized or pruned), or its run folder",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--top", type=int, default=3, help="classification: how many classes to show per image")
    p.add_argument("--beam", type=int, default=None, help="captioning: beam width (1: greedy) [3]")
    p.add_argument("-o", "--out", metavar="DIR", help="tasks that answer with images write them here")
    add_json(p)
    p.set_defaults(run=run_predict)


def run_predict(args, out) -> dict:
    from deeper.errors import ConfigError
    from deeper.inference import predict_files

    if args.top < 1:
        raise ConfigError("--top must be at least 1")
    answers, task = predict_files(
        args.weights,
        args.images,
        model=args.model,
        device=args.device,
        out_dir=args.out,
        **({"beam": args.beam} if args.beam is not None else {}),
    )
    for a in answers:
        out.line(task.describe_prediction(a, top=args.top))
    return {"task": task.name, "predictions": answers}


@command("misclassified", "draw the test images a model gets wrong (the book's figure 8-2)")
def configure_misclassified(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "example:\n  deeper misclassified --weights runs/mnist/model.safetensors --data mnist -o wrong.png"
    )
    _common(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE.png", help="where to write the gallery")
    add_gallery_size(p)
    add_json(p)
    p.set_defaults(run=run_misclassified)


def run_misclassified(args, out) -> dict:
    from deeper.analysis.gallery import misclassified_gallery
    from deeper.inference import misclassified

    png_output(args.output)
    check_gallery_size(args)
    args.data = data_of(args)
    ds, wrong, pred = misclassified(
        args.weights, args.data, model=args.model, device=args.device, data_dir=args.data_dir
    )
    shown = wrong[: args.max].cpu()
    title = f"{len(wrong)} of {len(ds):,} {args.data} test images misclassified (top-left: true, bottom-right: predicted)"
    misclassified_gallery(
        ds.images[shown], ds.labels[shown], pred[shown], args.output,
        classes=ds.classes if args.data != "mnist" else None, title=title, columns=args.columns,
    )  # fmt: skip
    out.line(
        f"{len(wrong)} misclassified of {len(ds):,} (accuracy {1 - len(wrong) / len(ds):.4f}); drew {len(shown)} in {args.output}"
    )
    return {
        "misclassified": len(wrong),
        "images": len(ds),
        "test_accuracy": 1 - len(wrong) / len(ds),
        "indices": wrong.tolist(),
        "predicted": pred[wrong].tolist(),
        "true": ds.labels[wrong.to(ds.labels.device)].tolist(),
        "output": args.output,
    }


@command("convert-book-weights", "import the book's deep_convnet_params.pkl into a .safetensors file")
def configure_convert(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "example:\n  deeper convert-book-weights deep_convnet_params.pkl --trust-pickle -o book.safetensors"
    )
    p.add_argument("pickle", metavar="FILE.pkl", help="the book's parameter pickle")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="confirm you trust this file: unpickling can run code (only NumPy arrays are accepted even so)",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="FILE.safetensors", help="where to write the weights"
    )
    add_json(p)
    p.set_defaults(run=run_convert)


def run_convert(args, out) -> dict:
    from deeper.models import save_weights
    from deeper.models.book import book_to_state_dict, load_book_params

    params = load_book_params(args.pickle, trust_pickle=args.trust_pickle)
    state = book_to_state_dict(params, args.pickle)
    meta = {
        "model": "deep-convnet",
        "num_classes": 10,
        "in_chans": 1,
        "img_size": 28,
        "dataset": "mnist",
        "classes": [str(i) for i in range(10)],
        "source": f"book parameters {Path(args.pickle).name}",
    }
    path = save_weights(state, args.output, meta)
    n = sum(v.numel() for v in state.values())
    out.line(
        f"wrote {path} ({n:,} parameters); evaluate with: deeper eval --model deep-convnet --weights {path} --data mnist"
    )
    return {"output": str(path), "params": n}
