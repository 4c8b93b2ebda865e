"""Pruning curve, knowledge distillation and ONNX export of trained DeepConvNet weights.

    python benchmarks/compress.py --weights runs/fast/model.safetensors --data-dir ../shared/datasets

- pruning: accuracy against sparsity for unstructured and structured pruning,
  without and with ``--finetune-steps`` of fine-tuning (PNG of each);
- distillation: ``--student`` trained alone and from the teacher on the first
  ``--subset`` training images (a small-data regime, where soft targets help most);
- ONNX: onnxruntime parity (max abs diff) and latency against PyTorch at batch 1000.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save  # noqa: E402

from deeper.accel.distill import distill  # noqa: E402
from deeper.accel.export import export_onnx, parity_and_latency  # noqa: E402
from deeper.accel.prune import sparsity_curve  # noqa: E402
from deeper.data import load_dataset  # noqa: E402
from deeper.models import model_from_weights  # noqa: E402
from deeper.train import TrainConfig  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True)
    p.add_argument("--data", default="mnist")
    p.add_argument("--data-dir")
    p.add_argument("--finetune-steps", type=int, default=200)
    p.add_argument("--student", default="mlp")
    p.add_argument("--subset", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--parts", default="prune,distill,onnx")
    p.add_argument("--output")
    args = p.parse_args(argv)
    parts = args.parts.split(",")
    result = {"weights": Path(args.weights).name, "data": args.data}
    if "prune" in parts:
        for ft in (0, args.finetune_steps):
            png = RESULTS / f"pruning_finetune{ft}.png"
            r = sparsity_curve(args.weights, args.data, finetune_steps=ft, data_dir=args.data_dir, plot=png)
            r["plot"] = png.name
            result[f"pruning_finetune{ft}"] = r
            for row in r["rows"]:
                print(
                    f"prune ft={ft} {row['method']:12s} {row['target_sparsity']:.2f}: {row['test_accuracy']:.4f}"
                )
    if "distill" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainConfig(model=args.student, data=args.data, data_dir=args.data_dir, subset=args.subset,
                              epochs=args.epochs, out=tmp, tensorboard=False, progress=False)  # fmt: skip
            r = distill(args.weights, cfg)
        for k in ("alone", "distilled"):
            r[k].pop("weights")
        r.pop("out")
        result["distillation"] = {**r, "subset": args.subset, "epochs": args.epochs}
        print(
            f"distill {args.student}: alone {r['alone']['test_accuracy']:.4f} distilled {r['distilled']['test_accuracy']:.4f} gain {r['gain']:+.2f} pt"
        )
    if "onnx" in parts:
        net, _ = model_from_weights(args.weights)
        x = load_dataset(args.data, "test", data_dir=args.data_dir).images[:1000].float().div(255)
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(net, x[:2], Path(tmp) / "m.onnx")
            r = parity_and_latency(net, path, x, repeats=7)
            r["size_bytes"] = path.stat().st_size
        result["onnx"] = r
        print(
            f"onnx: max abs diff {r['max_abs_diff']:.2e}, ort {r['onnxruntime_latency_ms']:.1f} ms vs torch {r['torch_latency_ms']:.1f} ms"
        )
    print(save("compress", result, args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
