"""DQN benchmarks (task ``rl``): CartPole-v1 over seeds, Double DQN against DQN, MinAtar Breakout from the pixels.

    python benchmarks/rl.py cartpole            # 5 seeds of DQN, 50,000 env steps each
    python benchmarks/rl.py double              # the same seeds with Double DQN
    python benchmarks/rl.py breakout --minutes 15
    python benchmarks/rl.py figures             # docs/images/rl-*.png from benchmarks/results/rl.json

Each part prints a table and writes its section of ``benchmarks/results/rl.json`` (the
other sections are kept).  The configurations are fixed here, before running:

- CartPole-v1: an MLP of 2 x 256 ReLU units, Adam lr 2.3e-3 (constant), batch 64, one
  update every 2 env steps, target copied every 128 updates, buffer 100,000, 1,000
  random steps first, epsilon 1 -> 0.04 over the first 16% of the run, gamma 0.99, Huber
  loss, gradient norm clipped at 10 (the Stable-Baselines3 zoo's settings, updates
  interleaved with acting); a greedy evaluation of 10 episodes every 2,500 env steps, the
  final weights those of the best evaluation (``--restore-best``), tested on 100 episodes
  seeded apart.  "Solved": a mean of at least 475 over the 100 test episodes.
- Breakout: MinAtar's network and settings (buffer 100,000, batch 32, one update per
  step, target copied every 1,000 updates, epsilon 1 -> 0.1 over 100,000 steps, 5,000
  random steps first), Adam lr 2.5e-4, stopped after ``--minutes`` of training (evaluations
  not counted); greedy evaluations of 10 episodes every 25,000 steps, a test of 30.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, machine, print_table, save  # noqa: E402

from deeper.train import TrainConfig, fit  # noqa: E402
from deeper.train.callbacks import TimeLimit  # noqa: E402

QUIET = dict(tensorboard=False, progress=False, device="cpu")
CARTPOLE = {
    "task_args": {"env": "CartPole-v1", "steps": 2500, "train_freq": 2, "sync": 128, "learning_starts": 1000,
                  "capacity": 100_000, "exploration": 0.16, "eps_end": 0.04, "gamma": 0.99, "width": 256,
                  "layers": 2, "episodes": 10, "test_episodes": 100},
    "epochs": 20, "batch_size": 64, "optimizer": "adam", "lr": 2.3e-3, "schedule": "constant", "clip_grad": 10.0,
    "restore_best": True,
}  # fmt: skip
BREAKOUT = {
    "task_args": {"env": "MinAtar/Breakout-v1", "steps": 25_000, "train_freq": 1, "sync": 1000,
                  "learning_starts": 5000, "capacity": 100_000, "exploration": 0.1, "eps_end": 0.1,
                  "gamma": 0.99, "episodes": 10, "test_episodes": 30},
    "epochs": 40, "batch_size": 32, "optimizer": "adam", "lr": 2.5e-4, "schedule": "constant", "clip_grad": 10.0,
}  # fmt: skip
SEEDS = (0, 1, 2, 3, 4)
RESULT = RESULTS / "rl.json"
QUICK = {"steps": 500, "learning_starts": 200, "episodes": 2, "test_episodes": 2}  # --quick: the plumbing only




def _config(base: dict, seed: int, out: str, **task_args) -> TrainConfig:
    options = {k: v for k, v in base.items() if k != "task_args"}
    return TrainConfig(task="rl", task_args={**base["task_args"], **task_args}, seed=seed, out=out, **options, **QUIET)


def _row(r: dict, seed: int) -> dict:
    return {
        "seed": seed, "test_mean_return": r["eval_mean_return"], "test_std_return": r["eval_std_return"],
        "solved": r["eval_mean_return"] >= (r["solved_at"] or float("inf")),
        "env_steps_to_solve": r["env_steps_to_solve"], "env_steps": r["env_steps"],
        "train_seconds": round(r["train_seconds"], 1), "seconds": round(r["seconds"], 1),
        "env_steps_per_s": round(r["img_per_s"]), "evaluations": r["evaluations"],
    }  # fmt: skip


def _load() -> dict:
    return json.loads(RESULT.read_text()) if RESULT.exists() else {}


def _store(section: str, value) -> None:
    doc = _load()
    doc.pop("benchmark", None), doc.pop("machine", None), doc.pop("torch", None)
    doc[section] = value
    save("rl", doc, str(RESULT))


def _show(rows: list[dict]) -> None:
    print_table([{k: v for k, v in r.items() if k != "evaluations"} for r in rows])


def value_figures(rows: list[dict]) -> dict:
    """Predicted against realised values over every evaluation of every seed (the over-estimation)."""
    evals = [e for r in rows for e in r["evaluations"] if "q" in e]
    last_q = [next(e["q"] for e in reversed(r["evaluations"]) if "q" in e) for r in rows]
    ceiling = 1 / (1 - CARTPOLE["task_args"]["gamma"])  # rewards of 1 per step: no state is worth more
    return {
        "mean_last_predicted_q": round(sum(last_q) / len(last_q), 1),
        "mean_overestimation": round(sum(e["q"] - e["g"] for e in evals) / len(evals), 1),
        "evaluations_above_ceiling": sum(e["q"] > ceiling for e in evals), "evaluations": len(evals),
    }  # fmt: skip


def cartpole(seeds, double: bool, quick: bool = False) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            cfg = _config(CARTPOLE, seed, f"{tmp}/{seed}", double=double, **(QUICK if quick else {}))
            r = fit(cfg.replace(epochs=2) if quick else cfg)
            rows.append(_row(r, seed))
            _show(rows[-1:])
    solved = [r for r in rows if r["solved"]]
    to_solve = sorted(r["env_steps_to_solve"] for r in rows if r["env_steps_to_solve"] is not None)
    summary = {
        "config": CARTPOLE, "double": double, "seeds": rows, "solved_seeds": len(solved), "of": len(rows),
        "median_env_steps_to_solve": to_solve[len(to_solve) // 2] if to_solve else None,
        "mean_train_seconds": round(sum(r["train_seconds"] for r in rows) / len(rows), 1),
        "mean_seconds": round(sum(r["seconds"] for r in rows) / len(rows), 1),
        "env_steps_per_s": round(sum(r["env_steps_per_s"] for r in rows) / len(rows)),
    }  # fmt: skip
    summary.update(value_figures(rows))
    print(f"{'Double DQN' if double else 'DQN'}: solved {len(solved)}/{len(rows)} seeds")
    _store("cartpole_double" if double else "cartpole", summary)


def breakout(minutes: float, seed: int, quick: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(BREAKOUT, seed, f"{tmp}/b", **(QUICK if quick else {}))
        r = fit(cfg, callbacks=[TimeLimit(minutes * 60)])
        episodes = Path(tmp, "b", "episodes.csv").read_text().splitlines()[1:]
    ends = [int(line.split(",")[1]) for line in episodes]
    rets = [float(line.split(",")[2]) for line in episodes]
    last = rets[-100:]
    row = _row(r, seed)
    row.update(minutes=minutes, stopped=r["stopped"], train_return_last_100=sum(last) / max(len(last), 1),
               episodes=list(zip(ends, rets)))  # fmt: skip
    _show([{k: v for k, v in row.items() if k != "episodes"}])
    _store("breakout", {"config": BREAKOUT, **row})


def figures(out_dir: Path) -> None:
    from deeper.analysis.plots import plt, save_figure
    from deeper.rl.plots import moving_average

    doc = _load()
    for key in ("cartpole", "cartpole_double"):  # derived figures of runs stored before they were computed
        if key in doc and "mean_overestimation" not in doc[key]:
            doc[key].update(value_figures(doc[key]["seeds"]))
            _store(key, doc[key])
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = [(k, n) for k, n in (("cartpole", "DQN"), ("cartpole_double", "Double DQN")) if k in doc]
    if runs:
        fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4), sharey=True, squeeze=False)
        for ax, (key, name) in zip(axes[0], runs):
            for r in doc[key]["seeds"]:
                ev = r["evaluations"]
                ax.plot([e["env_steps"] for e in ev], [e["return"] for e in ev], "-o", markersize=3,
                        label=f"seed {r['seed']} (test {r['test_mean_return']:.0f})")  # fmt: skip
            ax.axhline(475, color="tab:green", ls="--", lw=1, label="solved (475)")
            ax.set(xlabel="environment steps", title=f"{name} on CartPole-v1")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel("greedy return (10 episodes)")
        save_figure(fig, out_dir / "rl-cartpole-seeds.png")
    if "cartpole" in doc and "cartpole_double" in doc:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for ax, key, name in ((axes[0], "cartpole", "DQN"), (axes[1], "cartpole_double", "Double DQN")):
            for i, r in enumerate(doc[key]["seeds"]):
                ev = [e for e in r["evaluations"] if "q" in e]
                x = [e["env_steps"] for e in ev]
                c = f"C{i}"
                ax.plot(x, [e["q"] for e in ev], "-", color=c, lw=1.2, label=f"seed {r['seed']}: predicted Q")
                ax.plot(x, [e["g"] for e in ev], ":", color=c, lw=1.2, label="realised return" if i == 0 else None)
            ceiling = 1 / (1 - CARTPOLE["task_args"]["gamma"])
            ax.axhline(ceiling, color="k", ls="--", lw=0.8, label=f"no state is worth more ({ceiling:.0f})" if key == "cartpole" else None)
            ax.set(title=f"{name}: predicted Q(s, a) (solid) vs realised discounted return (dotted)",
                   xlabel="environment steps")  # fmt: skip
            ax.title.set_fontsize(8)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("value (greedy evaluation states)")
        axes[0].legend(fontsize=6)
        save_figure(fig, out_dir / "rl-overestimation.png")
    if "breakout" in doc:
        b = doc["breakout"]
        ends, rets = zip(*b["episodes"]) if b["episodes"] else ((), ())
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(ends, rets, ".", color="0.75", markersize=2, label="training episode")
        ax.plot(ends, moving_average(list(rets), 100), "-", label="training (last 100)")
        ev = b["evaluations"]
        ax.plot([e["env_steps"] for e in ev], [e["return"] for e in ev], "-o", markersize=3, label="greedy (10)")
        ax.axhline(5.8, color="tab:red", ls="--", lw=1, label="public run at 500k frames (5.8)")
        ax.set(xlabel="environment steps (frames)", ylabel="return",
               title=f"DQN on MinAtar Breakout, {b['minutes']:g} CPU minutes")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        save_figure(fig, out_dir / "rl-breakout.png")
    print(f"figures in {out_dir} ({machine()})")


def main() -> None:
    global RESULT
    import torch

    torch.set_num_threads(1)  # as the task sets it (its option threads): the machine line says so
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["cartpole", "double", "breakout", "figures"])
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--minutes", type=float, default=15.0, help="breakout: minutes of training")
    p.add_argument("--images", default=str(Path(__file__).resolve().parents[1] / "docs" / "images"))
    p.add_argument("--quick", action="store_true", help="tiny settings into --output (checks the plumbing)")
    p.add_argument("--output", help=f"results file [{RESULT}]")
    a = p.parse_args()
    if a.output:
        RESULT = Path(a.output)
    if a.part == "figures":
        figures(Path(a.images))
    elif a.part == "breakout":
        breakout(a.minutes, a.seeds[0], a.quick)
    else:
        cartpole(a.seeds, double=a.part == "double", quick=a.quick)


if __name__ == "__main__":
    main()
