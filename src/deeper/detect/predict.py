"""Detections for image files and for batches at batch size 1 (latency): what ``deeper predict`` answers.

An image of any size is read as grey (``deeper.data.images.read_image``), inverted when its
border is light (dark ink on light paper; the scenes are light ink on black), and
*letterboxed*: scaled so that its longer side is the model's input size (keeping its
aspect ratio) and padded with black at the bottom and right. Boxes come back divided by
the scale, clipped to the image: pixel ``xyxy`` of the input image.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from deeper.data.images import read_image


def letterbox(gray: np.ndarray, size: int) -> tuple[torch.Tensor, float]:
    """``(image (1, size, size) float32, scale)`` of a grey (H, W) image in [0, 1]."""
    h, w = gray.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    im = Image.fromarray(np.clip(gray * 255.0, 0, 255).round().astype(np.uint8))
    if (nh, nw) != (h, w):
        im = im.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
    out = torch.zeros(1, size, size)
    out[0, :nh, :nw] = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)
    return out, scale


def light_on_dark(gray: np.ndarray) -> np.ndarray:
    """The image as light ink on a dark ground (inverted when its border is mostly light)."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return 1.0 - gray if np.median(border) > 0.5 else gray


@torch.inference_mode()
def detect_files(model, paths: list, *, size: int, device, score_thresh: float) -> list[dict]:
    """One answer per image file: ``{"image", "boxes", "labels", "scores", "size"}`` (boxes in its pixels)."""
    out = []
    for path in paths:
        gray = light_on_dark(read_image(path, 1))
        x, scale = letterbox(gray, size)
        det = model(x[None].to(device))[0]
        keep = det["scores"] >= score_thresh
        h, w = gray.shape
        boxes = (det["boxes"][keep].float().cpu() / scale).clamp(min=0)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(max=w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(max=h)
        out.append(
            {
                "image": str(path),
                "boxes": [[round(float(v), 2) for v in b] for b in boxes],
                "labels": [int(v) for v in det["labels"][keep]],
                "scores": [round(float(v), 4) for v in det["scores"][keep]],
                "size": [w, h],
            }
        )
    return out


def draw_answer(path, answer: dict, classes: list[str], out_dir) -> Path:
    """The image with its detections drawn (PNG in ``out_dir``, named after the image)."""
    gray = read_image(path, 1)
    im = Image.fromarray((gray * 255).round().astype(np.uint8)).convert("RGB")
    scale = max(1, round(256 / max(im.size)))  # small scenes drawn bigger, so labels stay readable
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(im)
    for box, label, score in zip(answer["boxes"], answer["labels"], answer["scores"]):
        x1, y1, x2, y2 = (v * scale for v in box)
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=(255, 60, 60), width=max(1, scale // 2))
        name = classes[label] if label < len(classes) else str(label)
        draw.text((x1 + 1, max(0, y1 - 11)), f"{name} {score:.2f}", fill=(255, 220, 0))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{Path(path).stem}.detections.png"
    im.save(target)
    return target


@torch.inference_mode()
def latency_ms(model, images: torch.Tensor, *, warmup: int = 3) -> float:
    """Median milliseconds per image at batch size 1 over ``images`` (N, C, H, W), all of the model's work
    included (selective search for the models that run it, NMS)."""
    model.eval()
    for x in images[:warmup]:
        model(x[None])
    times = []
    for x in images:
        start = time.perf_counter()
        model(x[None])
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000) if times else float("nan")
