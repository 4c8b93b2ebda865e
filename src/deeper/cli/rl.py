"""``deeper play``: a trained DQN agent (task ``rl``) plays greedy episodes; mean and spread of its returns, a GIF."""

from __future__ import annotations

import argparse
import time

from deeper.cli import add_json, command

PLAY_SEED = 3_000_017  # the episodes' seed stream (apart from training's, validation's and test's)


@command(
    "play", "a trained DQN agent (deeper train --task rl) plays episodes: mean and spread of its returns"
)
def configure(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "examples:\n  deeper play --weights runs/cartpole --episodes 100\n"
        "  deeper play --weights runs/breakout/model.safetensors --env MinAtar/Breakout-v1 --gif breakout.gif"
    )
    p.add_argument(
        "--weights", required=True, metavar="W", help="the agent: a run folder or its .safetensors"
    )
    p.add_argument(
        "--env", help="environment (default: the one it was trained on; same observations and actions)"
    )
    p.add_argument("--episodes", type=int, default=100, help="episodes to play")
    p.add_argument("--epsilon", type=float, default=0.0, help="chance of a random action at each step")
    p.add_argument("--seed", type=int, default=0, help="seed of the episodes (each episode has its own)")
    p.add_argument("--gif", metavar="OUT.gif", help="write the first episode as an animated GIF")
    p.add_argument("--gif-frames", type=int, default=600, help="at most this many frames in the GIF")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    add_json(p)
    p.set_defaults(run=run)


def run(args, out) -> dict:
    from pathlib import Path

    import torch

    from deeper.errors import ConfigError
    from deeper.rl.envs import episode_seed, make_env
    from deeper.runtime import resolve_device
    from deeper.tasks.rl import load_qnet, play_episode

    if args.episodes < 1 or args.gif_frames < 1:
        raise ConfigError("--episodes and --gif-frames must be at least 1")
    if not 0.0 <= args.epsilon <= 1.0:
        raise ConfigError(f"--epsilon must be in [0, 1], got {args.epsilon}")
    if args.gif and not args.gif.lower().endswith(".gif"):
        raise ConfigError(f"--gif {args.gif!r} must be a .gif file")
    weights = Path(args.weights)
    if weights.is_dir():
        weights = weights / "model.safetensors"
    q, spec = load_qnet(weights)
    device = resolve_device(args.device)
    q = q.to(device).eval()
    name = args.env or spec["env"]
    env = make_env(name, render=bool(args.gif))
    info = env.info
    if list(info.obs_shape) != list(spec["obs_shape"]) or info.n_actions != spec["n_actions"]:
        raise ConfigError(
            f"{name} has observations {list(info.obs_shape)} and {info.n_actions} actions; the agent was trained on "
            f"{spec['env']} ({spec['obs_shape']}, {spec['n_actions']} actions)"
        )
    returns, lengths, frames = [], [], [] if args.gif else None
    started = time.perf_counter()
    with torch.inference_mode():
        for i in range(args.episodes):
            r = play_episode(q, env, episode_seed(PLAY_SEED + args.seed, i), epsilon=args.epsilon,
                             gamma=spec.get("gamma", 0.99), device=device, frames=frames if i == 0 else None)  # fmt: skip
            returns.append(r["return"])
            lengths.append(r["length"])
    seconds = time.perf_counter() - started
    env.close()
    n = len(returns)
    mean = sum(returns) / n
    std = (sum((r - mean) ** 2 for r in returns) / n) ** 0.5
    result = {
        "env": name, "episodes": n, "mean_return": mean, "std_return": std, "min_return": min(returns),
        "max_return": max(returns), "mean_length": sum(lengths) / n, "steps_per_s": sum(lengths) / seconds,
        "returns": returns, "weights": str(weights),
    }  # fmt: skip
    solved = info.solved_at
    out.line(
        f"{name}: mean return {mean:.1f} +- {std:.1f} over {n} episodes (min {min(returns):g}, max {max(returns):g}"
        f"{f'; solved at {solved:g}' if solved is not None else ''}), {sum(lengths):,} steps in {seconds:.1f} s"
    )
    if args.gif:
        write_gif(frames[: args.gif_frames], args.gif)
        result["gif"] = args.gif
        out.line(f"first episode ({min(len(frames), args.gif_frames)} frames): {args.gif}")
    return result


def write_gif(frames: list, path: str, fps: int = 25) -> None:
    """Frames (H, W, 3 uint8 arrays) as a looping animated GIF."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
