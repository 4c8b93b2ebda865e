"""What the image-to-image tasks share: options of classification they refuse, and output file names."""

from __future__ import annotations

from pathlib import Path

from deeper.errors import ConfigError


def refuse_classification_options(cfg, task: str) -> None:
    """Options of classification that would silently do nothing in an image-to-image task."""
    r, s = cfg.regularize, cfg.sampling
    used = {
        "--augment": r.augment not in (None, "none"), "--mixup": bool(r.mixup), "--cutmix": bool(r.cutmix),
        "--input-noise": bool(r.input_noise),
        "--bootstrap": s.bootstrap, "--sample-weights": s.sample_weights is not None,
        "--folds": s.folds is not None, "--init-from": cfg.transfer.init_from is not None,
        "--freeze": cfg.transfer.freeze != "none",
    }  # fmt: skip
    if bad := [k for k, v in used.items() if v]:
        raise ConfigError(f"task {task!r} does not take {', '.join(bad)} (classification options)")


def output_path(out_dir, image, used: set[str], suffix: str) -> Path:
    """``OUT_DIR/STEM_SUFFIX.png``, numbered where two inputs share a stem."""
    stem, k = Path(image).stem, 1
    name = stem
    while name in used:
        k += 1
        name = f"{stem}-{k}"
    used.add(name)
    return Path(out_dir) / f"{name}_{suffix}.png"
