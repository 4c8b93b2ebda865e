"""``deeper quantize``, ``prune``, ``distill``, ``export`` and ``profile``: the speed tools of section 8.3."""

from __future__ import annotations

import argparse

from deeper.cli import add_data_dir, add_json, command, png_output
from deeper.errors import ConfigError


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _weights_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="registered model name (default: the one recorded in the weights file)")
    p.add_argument(
        "--weights", required=True, metavar="FILE_OR_RUN",
        help="float32 .safetensors weights written by deeper, or their run folder",
    )  # fmt: skip


@command(
    "quantize", "quantize trained weights (int8 static, int8 QAT, 4-bit weight-only, 1-bit) and measure them"
)
def configure_quantize(p: argparse.ArgumentParser) -> None:
    from deeper.accel.quantize import METHODS

    p.epilog = (
        "methods:\n"
        "  int8    post-training static int8 (x86 kernels), calibrated on training images\n"
        "  qat     int8 after quantization-aware fine-tuning (--qat-steps)\n"
        "  int4    4-bit weight-only, groups of --group-size weights share a float16 scale\n"
        "  binary  train the 1-bit DeepConvNet (binary-convnet) on --data; compared with --weights\n\n"
        "speedup is CPU latency at --batch-size against deeper's fastest float32 path\n"
        "(NCHW or channels-last, whichever is faster, measured in the same run).\n\n"
        "example:\n  deeper quantize --model deep-convnet --weights runs/x/model.safetensors --data mnist "
        "--method int8 -o int8.safetensors --json"
    )
    _weights_args(p)
    p.add_argument(
        "--data", default="mnist", help="dataset to calibrate on (train split) and score (test split)"
    )
    add_data_dir(p)
    p.add_argument("--method", required=True, choices=list(METHODS), help="how to quantize")
    p.add_argument(
        "-o", "--output", required=True, metavar="FILE.safetensors", help="where to write the quantized model"
    )
    p.add_argument(
        "--calib-batches", type=int, default=10, help="int8: calibration batches of 100 training images"
    )
    p.add_argument("--qat-steps", type=int, default=300, help="qat: fine-tuning steps (batch 128)")
    p.add_argument("--group-size", type=int, default=32, help="int4: weights per scale")
    p.add_argument("--epochs", type=int, help="binary: training epochs [the fast recipe's]")
    p.add_argument("--batch-size", type=int, default=1000, help="images per forward pass when timing")
    p.add_argument("--repeats", type=int, default=5, help="timed passes per path (median)")
    p.add_argument("--seed", type=int, default=0)
    add_json(p)
    p.set_defaults(run=run_quantize)


def run_quantize(args, out) -> dict:
    from deeper.accel.quantize import quantize_weights

    r = quantize_weights(
        args.weights, args.data, args.method, args.output, model=args.model, data_dir=args.data_dir,
        calib_batches=args.calib_batches, qat_steps=args.qat_steps, group_size=args.group_size,
        binary_epochs=args.epochs, batch_size=args.batch_size, repeats=args.repeats, seed=args.seed,
    )  # fmt: skip
    out.line(
        f"{args.method}: accuracy {r['test_accuracy']:.4f} (float32 {r['float_accuracy']:.4f}, "
        f"drop {r['accuracy_drop']:+.2f} points); {r['size_bytes']:,} bytes (float32 {r['float_size_bytes']:,}); "
        f"{r['latency_ms']:.1f} ms per {r['batch_size']} images, {r['speedup']:.2f}x float32 {r['float_path']} "
        f"({r['float_latency_ms']:.1f} ms); wrote {r['output']}"
    )
    return r


@command("prune", "prune trained weights at several sparsities and plot accuracy against sparsity")
def configure_prune(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "examples:\n  deeper prune --weights runs/mnist/model.safetensors --data mnist -o pruning.png --json\n"
        "  deeper prune --weights runs/mnist --method unstructured --sparsities 0.8 -o p.png --save pruned.safetensors"
    )
    _weights_args(p)
    p.add_argument("--data", default="mnist", help="dataset to score on (test split)")
    add_data_dir(p)
    p.add_argument(
        "--method", default="unstructured,structured",
        help="comma-separated: unstructured (global smallest weights), structured (conv output channels)",
    )  # fmt: skip
    p.add_argument("--sparsities", type=_floats, default=[0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95],
                   help="fractions of weights (or channels) to remove")  # fmt: skip
    p.add_argument("--finetune-steps", type=int, default=0, help="Adam steps after pruning, masks held fixed")
    p.add_argument("-o", "--output", required=True, metavar="FILE.png", help="where to draw the curve")
    p.add_argument(
        "--save", metavar="FILE.safetensors",
        help="also write the model pruned with the first --method at the highest of --sparsities "
        "(eval, predict and serve take it)",
    )  # fmt: skip
    add_json(p)
    p.set_defaults(run=run_prune)


def run_prune(args, out) -> dict:
    from deeper.accel.prune import sparsity_curve

    png_output(args.output)
    r = sparsity_curve(
        args.weights, args.data, methods=[m.strip() for m in args.method.split(",") if m.strip()],
        sparsities=args.sparsities, finetune_steps=args.finetune_steps, model=args.model,
        data_dir=args.data_dir, plot=args.output, save=args.save,
    )  # fmt: skip
    out.line(f"dense accuracy {r['dense_accuracy']:.4f}")
    for row in r["rows"]:
        out.line(
            f"  {row['method']:12s} sparsity {row['target_sparsity']:.2f} (weights {row['weight_sparsity']:.3f}, "
            f"{row['zero_channels']} zero channels): accuracy {row['test_accuracy']:.4f}"
        )
    out.line(f"wrote {args.output}")
    if saved := r.get("saved"):
        out.line(
            f"wrote {saved['output']} ({saved['method']} at sparsity {saved['target_sparsity']:.2f}); "
            f"use it with: deeper eval --weights {saved['output']}"
        )
    return r


@command("distill", "train a small student from a trained teacher and compare with the student trained alone")
def configure_distill(p: argparse.ArgumentParser) -> None:
    p.epilog = "example:\n  deeper distill --teacher runs/mnist/model.safetensors --student mlp --data mnist --subset 5000"
    from deeper.cli import parse_kv

    p.add_argument("--teacher", required=True, metavar="FILE", help="the teacher's .safetensors weights")
    p.add_argument("--student", default="mlp", help="registered model name of the student")
    p.add_argument("--student-arg", dest="model_kwargs", action="append", type=parse_kv, default=[],
                   metavar="KEY=VALUE", help="student model option, repeatable")  # fmt: skip
    p.add_argument("--data", default="mnist", help="dataset")
    add_data_dir(p)
    p.add_argument("--epochs", type=int, help="training epochs of both students [recipe]")
    p.add_argument("--subset", type=int, help="train both students on only the first N training images")
    p.add_argument("--recipe", default="fast", help="training recipe of both students")
    p.add_argument("--temperature", type=float, default=4.0, help="softmax temperature of the soft targets")
    p.add_argument("--alpha", type=float, default=0.9, help="weight of the soft (teacher) term")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", default="runs/distill", metavar="DIR", help="folder for both runs")
    add_json(p)
    p.set_defaults(run=run_distill)


def run_distill(args, out) -> dict:
    from deeper.accel.distill import distill
    from deeper.train import TrainConfig

    cfg = TrainConfig(
        model=args.student, data=args.data, data_dir=args.data_dir, recipe=args.recipe, epochs=args.epochs,
        subset=args.subset, seed=args.seed, device=args.device, out=args.out, tensorboard=False,
        model_kwargs=dict(args.model_kwargs),
    )  # fmt: skip
    r = distill(args.teacher, cfg, temperature=args.temperature, alpha=args.alpha)
    out.line(
        f"student {r['student']}: alone {r['alone']['test_accuracy']:.4f}, distilled "
        f"{r['distilled']['test_accuracy']:.4f} ({r['gain']:+.2f} points; teacher {r['teacher_accuracy']:.4f})"
    )
    return r


@command("export", "export trained weights to ONNX and check onnxruntime against PyTorch")
def configure_export(p: argparse.ArgumentParser) -> None:
    p.epilog = "example:\n  deeper export --weights runs/mnist/model.safetensors -o model.onnx --json"
    _weights_args(p)
    p.add_argument("--data", help="dataset whose test images check parity [the one recorded in the weights]")
    add_data_dir(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE.onnx", help="where to write the ONNX model")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset version")
    p.add_argument("--batch-size", type=int, default=1000, help="images for the parity and latency check")
    p.add_argument("--repeats", type=int, default=5, help="timed passes (median)")
    add_json(p)
    p.set_defaults(run=run_export)


def run_export(args, out) -> dict:
    from deeper.accel.export import export_onnx, parity_and_latency
    from deeper.data import load_dataset
    from deeper.inference import check_compatible
    from deeper.models import model_from_weights

    if args.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    net, meta = model_from_weights(args.weights, args.model)
    data = args.data or meta.get("dataset")
    if not data:
        raise ConfigError(f"{args.weights} records no dataset; pass --data")
    check_compatible(meta, data, args.weights)
    test = load_dataset(data, "test", data_dir=args.data_dir)
    x = test.images[: args.batch_size].float().div(255)
    path = export_onnx(net, x[:2], args.output, opset=args.opset)
    r = parity_and_latency(net, path, x, repeats=args.repeats)
    r.update(model=meta.get("model", args.model), data=data, output=str(path), size_bytes=path.stat().st_size)
    out.line(
        f"wrote {path} ({r['size_bytes']:,} bytes); onnxruntime vs PyTorch on {len(x)} {data} images: "
        f"max abs diff {r['max_abs_diff']:.2e}, same predictions {r['same_predictions']:.4f}; "
        f"{r['onnxruntime_latency_ms']:.1f} ms vs {r['torch_latency_ms']:.1f} ms"
    )
    return r


@command(
    "profile", "share of forward time per layer type (conv, pool, fc, norm, relu): the book's figure 8-14"
)
def configure_profile(p: argparse.ArgumentParser) -> None:
    p.epilog = "example:\n  deeper profile --model alexnet -o alexnet.png          # the book's figure 8-14"
    p.add_argument("--model", default="deep-convnet", help="registered model name (see `deeper models`)")
    p.add_argument(
        "--weights", metavar="FILE", help="trained weights (timing does not depend on them) [random init]"
    )
    p.add_argument(
        "--input", metavar="CxHxW", help="input shape, e.g. 3x224x224 or 3,224,224 [the model's default]"
    )
    p.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="classes of the output layer [10, or 1000 for 224x224 inputs]",
    )
    p.add_argument("--batch-size", type=int, default=100, help="images per forward pass")
    p.add_argument("--repeats", type=int, default=5, help="profiled forward passes")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=False, help="NHWC layout"
    )
    p.add_argument("-o", "--output", metavar="FILE.png", help="bar chart of the shares")
    add_json(p)
    p.set_defaults(run=run_profile)


def run_profile(args, out) -> dict:
    import torch

    from deeper.accel.profile import CATEGORIES, plot_profile, profile_forward
    from deeper.analysis.summary import parse_shape
    from deeper.models import create_model, get_model_entry, model_from_weights
    from deeper.runtime import resolve_device

    if args.batch_size < 1 or args.repeats < 1:
        raise ConfigError("--batch-size and --repeats must be at least 1")
    if args.output:
        png_output(args.output)
    entry = get_model_entry(args.model)
    c, h, w = parse_shape(args.input) if args.input else entry.default_input
    if args.weights:
        net, _ = model_from_weights(args.weights, args.model)
    else:
        import inspect

        kwargs = {}
        if h == w and "img_size" in inspect.signature(entry.factory).parameters:
            kwargs["img_size"] = h
        n = args.num_classes or (1000 if h >= 224 else 10)
        net = create_model(args.model, num_classes=n, in_chans=c, **kwargs)
    device = resolve_device(args.device)
    net = net.to(device).eval()
    x = torch.rand(args.batch_size, c, h, w, device=device)
    if args.channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    try:
        r = profile_forward(net, x, repeats=args.repeats)
    except RuntimeError as e:
        raise ConfigError(f"{args.model} cannot run on input {c}x{h}x{w}: {str(e).splitlines()[0]}") from None
    r.update(model=args.model, threads=torch.get_num_threads())
    if args.output:
        plot_profile(
            r, args.output, title=f"{args.model}, batch {args.batch_size} of {c}x{h}x{w} on {device}"
        )
        r["output"] = args.output
    out.line(
        f"{args.model} on {device}: {r['seconds_per_forward'] * 1000:.1f} ms per forward of {args.batch_size}"
    )
    for cat in CATEGORIES:
        out.line(f"  {cat:6s} {r['share'][cat] * 100:5.1f}%  ({r['seconds'][cat] * 1000:.2f} ms)")
    return r
