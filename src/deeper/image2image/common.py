"""What the image-to-image tasks share: the names of the images they write."""

from __future__ import annotations

from pathlib import Path


def output_path(out_dir, image, used: set[str], suffix: str) -> Path:
    """``OUT_DIR/STEM_SUFFIX.png``, numbered where two inputs share a stem."""
    stem, k = Path(image).stem, 1
    name = stem
    while name in used:
        k += 1
        name = f"{stem}-{k}"
    used.add(name)
    return Path(out_dir) / f"{name}_{suffix}.png"
