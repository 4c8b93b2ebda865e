"""``deeper generate``: images from a trained generator (task ``generate``), diffusion model (task ``diffusion``) or
text-to-image model (tasks ``text-to-image`` and ``text-layout``)."""

from __future__ import annotations

import argparse

from deeper.cli import add_json, command, png_output


@command("generate", "sample images from a trained GAN, diffusion or text-to-image model: a grid, an interpolation, "
                     "a trajectory",
         group="use trained models")  # fmt: skip
def configure(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "examples:\n  deeper generate --weights runs/dcgan -n 64 -o grid.png\n"
        "  deeper generate --weights runs/cdcgan -n 16 --label 3 --seed 7 -o threes.png\n"
        "  deeper generate --weights runs/ddpm --steps 20 --guidance 3 --label 5 -o fives.png\n"
        "  deeper generate --weights runs/ddpm --trajectory -o steps.png\n"
        "  deeper generate --weights runs/dcgan --interpolate -o walk.png\n"
        '  deeper generate --weights runs/t2i --prompt "a 3 to the left of a 7" -n 8 -o scenes.png\n'
        '  deeper generate --weights runs/layout --prompt "there is a 4 below a 6" -o scenes.png'
    )
    p.add_argument(
        "--weights",
        required=True,
        metavar="W",
        help="a generate, diffusion, text-to-image or text-layout run folder, or its weights",
    )
    p.add_argument("-n", "--samples", type=int, default=64, help="images in the grid")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png", help="the grid, as PNG")
    p.add_argument(
        "--label", type=int, help="class of every image (class-conditional models; default: all classes)"
    )
    p.add_argument("--prompt", help="caption of the scene (text-to-image models)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise")
    p.add_argument("--steps", type=int, help="DDIM steps (diffusion; default: as the run was scored)")
    p.add_argument(
        "--guidance", type=float, help="classifier-free guidance scale (conditional diffusion; 1: none)"
    )
    p.add_argument("--columns", type=int, default=8, help="images per row of the grid")
    p.add_argument(
        "--interpolate", action="store_true", help="GAN: straight lines between latent points instead"
    )
    p.add_argument(
        "--trajectory", action="store_true", help="diffusion: the denoising steps of each image instead"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    add_json(p)
    p.set_defaults(run=run)


def run(args, out) -> dict:
    import torch

    from deeper.errors import ConfigError
    from deeper.models.weights import weights_file
    from deeper.runtime import resolve_device
    from deeper.tasks.generate import interpolate, load_generator, sample, save_grid

    png_output(args.output)
    path = weights_file(args.weights)
    g, meta = load_generator(path)
    device = resolve_device(args.device)
    g = g.to(device)
    kind, k = meta.get("kind"), int(meta.get("num_classes", 10))
    conditional = str(meta.get("conditional", "false")).lower() == "true"
    text = str(meta.get("text", "false")).lower() == "true"
    if args.prompt is not None and not text:
        raise ConfigError(
            f"{path} is not a text-to-image model; --prompt needs one (its images are {meta.get('dataset')})"
        )
    if text and args.prompt is None:
        raise ConfigError(
            f'{path} is a text-to-image model: say what to draw with --prompt (e.g. "a 3 left of a 7")'
        )
    if args.label is not None and not conditional:
        raise ConfigError(f"{path} is an unconditional model; --label needs a class-conditional one")
    if args.label is not None and not 0 <= args.label < k:
        raise ConfigError(f"--label must be in [0, {k - 1}] for {meta.get('dataset')}, got {args.label}")
    gan = kind in ("gan", "wgan-gp")
    if args.interpolate and not gan:
        hint = "; use --trajectory for a diffusion model" if kind == "diffusion" else ""
        raise ConfigError(f"--interpolate walks a GAN's latent space{hint}")
    if args.trajectory and kind != "diffusion":
        hint = "; use --interpolate for a GAN" if gan else ""
        raise ConfigError(f"--trajectory shows a diffusion model's steps{hint}")
    if (args.steps is not None or args.guidance is not None) and kind != "diffusion":
        raise ConfigError("--steps and --guidance are for diffusion models")
    n = args.samples
    labels = None
    if conditional:
        labels = torch.full((n,), args.label) if args.label is not None else torch.arange(n).remainder(k)
    if args.interpolate:
        rows = max(1, n // 10)
        images = interpolate(g, rows=rows, steps=10, seed=args.seed, device=device,
                             labels=None if labels is None else labels[:rows].repeat_interleave(10))  # fmt: skip
        nrow = 10
    elif args.trajectory:
        steps: list = []
        sample(None, g, meta, n, labels=labels, seed=args.seed, device=device, steps=args.steps,
               guidance=args.guidance, trajectory=steps, prompts=[args.prompt] * n if text else None)  # fmt: skip
        keep = steps[:: max(1, len(steps) // 10)][:9] + [steps[-1]]
        images, nrow = torch.stack(keep, 1).flatten(0, 1), len(keep)
    else:
        images = sample(None, g, meta, n, labels=labels, seed=args.seed, device=device, steps=args.steps,
                        guidance=args.guidance, prompts=[args.prompt] * n if text else None)  # fmt: skip
        nrow = args.columns
    save_grid(images, args.output, nrow=nrow)
    what = f"{len(images)} images" + (f" of class {args.label}" if args.label is not None else "")
    what += f" for {args.prompt!r}" if text else ""
    out.line(f"{what} from {meta.get('model')} ({kind}, {meta.get('dataset')}): {args.output}")
    return {"output": args.output, "images": len(images), "model": meta.get("model"), "kind": kind,
            "dataset": meta.get("dataset"), "seed": args.seed, "label": args.label, "prompt": args.prompt}  # fmt: skip
