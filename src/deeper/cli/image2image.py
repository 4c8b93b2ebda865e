"""``deeper stylize``: paint a photograph in the manner of another image (Gatys et al., task ``style``)."""

from __future__ import annotations

import argparse
import math

from deeper.cli import add_json, command, png_output

#: optimizer steps of one epoch of a stylize run (one evaluation row per epoch)
EPOCH_STEPS = 50


@command("stylize", "optimise an image to hold one image's content in another's style (Gatys et al.)")
def configure_stylize(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "The image starts as the content image and is optimised (L-BFGS or Adam) against the content\n"
        "and Gram-matrix style losses of a feature network (random weights unless --features names a\n"
        "trained vgg-features); a second network, the referee, measures the held-out style loss.\n"
        "CONTENT and STYLE are image files or bundled photographs (astronaut, chelsea, brick, ...).\n\n"
        "examples:\n  deeper stylize --content chelsea --style brick -o cat.png\n"
        "  deeper stylize --content me.jpg --style starry.png --steps 300 --size 384 -o me_starry.png --json"
    )
    p.add_argument("--content", required=True, metavar="IMAGE", help="the image whose content is kept")
    p.add_argument("--style", required=True, metavar="IMAGE", help="the image whose style is taken")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png", help="where to write the result")
    p.add_argument("--steps", type=int, default=100, help="optimizer steps")
    p.add_argument("--size", type=int, default=256, help="longer side of the result, pixels")
    p.add_argument("--solver", default="lbfgs", choices=("lbfgs", "adam"), help="the image's optimizer")
    p.add_argument("--style-weight", type=float, default=20.0, help="weight of the style loss (content: 1)")
    p.add_argument(
        "--features", default="random", help="feature network: random, or a vgg-features weights file"
    )
    p.add_argument(
        "--referee", default="random", help="network scoring the result: random (another seed) or a file"
    )
    p.add_argument(
        "--run-dir", dest="keep", metavar="DIR", help="keep the run folder here (default: a temporary one)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_json(p)
    p.set_defaults(run=run_stylize)


def run_stylize(args, out) -> dict:
    import shutil
    import tempfile
    from pathlib import Path

    from deeper.train import TrainConfig, fit

    output = png_output(args.output)
    epochs = max(1, math.ceil(args.steps / EPOCH_STEPS))
    steps = math.ceil(args.steps / epochs)
    task_args = {
        "content": args.content, "style": args.style, "size": args.size, "steps": steps, "solver": args.solver,
        "style_weight": args.style_weight, "features": args.features, "referee": args.referee,
    }  # fmt: skip
    tmp = None
    run_dir = args.keep
    if run_dir is None:
        tmp = tempfile.mkdtemp(prefix="deeper-stylize-")
        run_dir = str(Path(tmp) / "run")
    try:
        r = fit(TrainConfig(task="style", task_args=task_args, epochs=epochs, batch_size=1, seed=args.seed,
                            out=run_dir, device=args.device, tensorboard=False, progress=False))  # fmt: skip
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(r["output"], output)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    drop = r.get("heldout_style_drop")
    out.line(
        f"wrote {output}: {r['steps']} {args.solver} steps in {r['train_seconds']:.1f} s; held-out style loss "
        f"down {drop:.1f}x, content SSIM {r['test_content_ssim']:.3f}"
    )
    return {
        "output": output, "steps": r["steps"], "seconds": r["train_seconds"], "heldout_style_drop": drop,
        "content_ssim": r["test_content_ssim"], "style_loss": r["test_style"], "content_loss": r["test_content"],
        "run_dir": args.keep,
    }  # fmt: skip
