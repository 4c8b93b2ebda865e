"""``deeper scenes``: the multi-digit scene datasets (``deeper scenes preview``)."""

from __future__ import annotations

import argparse

from deeper.cli import _Formatter, add_data_dir, add_json, command, png_output


@command("scenes", "multi-digit scenes for detection, segmentation and captioning")
def configure_scenes(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "presets: scenes-det, scenes-seg, scenes-cap, scenes-det-300 (each also with -fashion);\n"
        "every subcommand takes --json\n\n"
        "example:\n"
        "  deeper scenes preview --preset scenes-det -o scenes.png\n"
        "  deeper scenes preview --preset scenes-cap --split test --n 4 --seed 1 -o cap.png --json"
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    pv = sub.add_parser(
        "preview",
        help="draw sample scenes: boxes and labels, the class mask, a caption",
        description="Draw the first N scenes of a split (the same scenes the dataset holds for that "
        "seed): boxes and class names over each image, the class mask beneath it, one caption under it.",
        formatter_class=_Formatter,
    )
    pv.epilog = (
        "example:\n  deeper scenes preview --preset scenes-seg --n 6 -o seg.png\n"
        "  deeper scenes preview --preset all --n 3 -o docs/images/scenes_preview.png"
    )
    pv.add_argument(
        "--preset",
        default="scenes-det",
        help="scene preset (see 'deeper datasets'); several separated by commas, or 'all' (the mnist ones)",
    )
    pv.add_argument("-o", "--output", default="scenes_preview.png", help="PNG file to write")
    pv.add_argument("--n", type=int, default=8, help="scenes to draw (1-32)")
    pv.add_argument("--seed", type=int, default=0, help="generation seed of the split")
    pv.add_argument("--split", default="train", choices=("train", "val", "test"), help="which scenes")
    add_data_dir(pv)
    add_json(pv)
    pv.set_defaults(run=run_preview)


def run_preview(args, out) -> dict:
    from deeper.data.scenes import PRESETS, load_scenes, resolve_preset
    from deeper.errors import ConfigError

    output = png_output(args.output)
    names = list(PRESETS) if args.preset == "all" else [n.strip() for n in args.preset.split(",")]
    resolved = [resolve_preset(n) for n in names]
    if not 1 <= args.n <= 32:
        raise ConfigError(f"--n must be between 1 and 32, got {args.n}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    panels, scenes = [], []
    for preset, source, name in resolved:
        ds = load_scenes(
            preset, args.split, n=args.n, seed=args.seed, source=source, data_dir=args.data_dir, cache=False
        )
        panels.append((f"{name} ({args.split}, seed {args.seed})", ds))
        scenes.append(
            {"preset": name, "objects": ds.counts.tolist(), "captions": [list(c) for c in ds.captions]}
        )

    from deeper.analysis.scene_preview import draw_scenes

    draw_scenes(panels, output)
    out.line(f"wrote {output}: {args.n} scenes each of {', '.join(n for _, _, n in resolved)} ({args.split})")
    return {"output": output, "split": args.split, "seed": args.seed, "scenes": args.n, "presets": scenes}
