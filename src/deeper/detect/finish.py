"""What the detection task does after the test evaluation: the SVM stage of R-CNN and SPPNet (then the
weights are written again and the test split scored again), the latency at batch size 1, the figures."""

from __future__ import annotations

from pathlib import Path

import torch

from deeper.detect.predict import latency_ms
from deeper.train.metrics import scalars


def finish_detection(task, run, run_dir, test: dict) -> dict:
    model = run.final_model
    model.eval()
    device = next(model.parameters()).device
    extras: dict = {}
    a = task.args
    if getattr(model, "svm_stage", False):
        # the SVMs score from now on: the test figures the engine reports become theirs (``test`` is
        # updated in place; the softmax's figures stay in the ``svm`` entry)
        extras["svm"] = _svm_stage(task, run, Path(run_dir), model, test)
    ds, props = task._data["test"]
    if a["latency_images"]:
        images = ds.float_images(range(min(a["latency_images"], len(ds)))).to(device)
        extras["latency_ms"] = latency_ms(model, images)
        extras["latency_threads"] = torch.get_num_threads()
    if a["figures"]:
        _figures(task, run, Path(run_dir), model, ds, props, device)
    return extras


def _svm_stage(task, run, run_dir: Path, model, test: dict) -> dict:
    from deeper.detect.svm import fit_svm_stage
    from deeper.models.weights import load_weights, save_weights
    from deeper.train.loop import evaluate

    ds, props = task._data["train"]
    report = fit_svm_stage(model, ds, props, scenes=task.args["svm_scenes"])
    report.update({f"softmax_test_{k}": v for k, v in scalars(test).items()})
    test.clear()
    test.update(evaluate(run.parts, task, run.test_loader, split="test"))
    path = run_dir / "model.safetensors"
    if path.is_file():  # the engine wrote the network; write it again with its SVMs and regressors
        _, meta = load_weights(path)
        meta[f"test_{task.primary}"] = test.get(task.primary)
        save_weights(model, path, meta)
    return report


@torch.inference_mode()
def _figures(task, run, run_dir: Path, model, ds, props, device) -> None:
    from deeper.analysis.detection import draw_anchors, draw_predictions, plot_pr_curves

    k = min(8, len(ds))
    x = ds.float_images(range(k)).to(device)
    preds = model(x, proposals=props[:k] if props is not None else None)
    targets = ds.targets(range(k))
    name = f"{run.model_name} on {run.data_name}"
    draw_predictions(
        x.cpu(), targets, [{n: v.cpu() for n, v in p.items()} for p in preds], task.classes,
        run_dir / "detections.png", title=f"{name}: true boxes (green), predictions scoring >= 0.3 (red)",
    )  # fmt: skip
    if task._test_evaluator is not None and task._test_evaluator.updates:
        r = task._test_evaluator.result()
        plot_pr_curves(
            r["pr50"], task.classes, run_dir / "pr_curves.png", ap50=r["ap50_per_class"],
            title=f"{name}: precision-recall at IoU 0.5 (mAP@0.5 {r['map50']:.3f})",
        )  # fmt: skip
    if hasattr(model, "anchors_at"):
        anchors, stride = model.anchors_at()
        draw_anchors(
            x[0].cpu(), anchors, run_dir / "anchors.png", stride=stride,
            title=f"{name}: the 9 anchors of one position (3 scales x 3 ratios)",
        )  # fmt: skip
