"""``deeper experiment``: the claims of the notes as experiments (list, run, report)."""

from __future__ import annotations

import argparse

from deeper.cli import _Formatter, add_data_dir, add_json, command


def _add_results(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--results",
        metavar="DIR",
        help="results folder: <DIR>/<experiment>/<profile>/ (default: $DEEPER_EXPERIMENTS, else docs/experiments)",
    )


@command("experiment", "the claims of the notes as experiments: list them, run one, write the report")
def configure(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "every action takes --json (one JSON object as the last line of stdout)\n\n"
        "examples:\n"
        "  deeper experiment list\n"
        "  deeper experiment list 'depth-*' --json\n"
        "  deeper experiment run conv3x3-vs-5x5                 # the quick profile: seconds to minutes\n"
        "  deeper experiment run all --profile quick\n"
        "  deeper experiment run skip-connections --profile full --data-dir ../shared/datasets\n"
        "  deeper experiment run transfer --profile full --reuse    # analyse benchmarks/results/transfer.json\n"
        "  deeper experiment report                             # docs/experiments/report.html, docs/experiments.md"
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="each experiment: its claim, its source in the notes, its last verdicts",
                        description="List the experiments with their claims, sources and the verdicts of the "
                        "runs finished in the results folder.", formatter_class=_Formatter)  # fmt: skip
    ls.add_argument("pattern", nargs="?", default="*", help="shell-style filter on the names")
    _add_results(ls)
    add_json(ls)
    ls.set_defaults(run=run_list)

    rn = sub.add_parser("run", help="run experiments; write their JSON, figures and verdicts",
                        description="Run one experiment (or several, comma-separated, or 'all') with a profile and "
                        "write <results>/<name>/<profile>/result.json and its PNG figures.",
                        formatter_class=_Formatter)  # fmt: skip
    rn.add_argument(
        "name", help="experiment name(s), comma-separated, or 'all' (see `deeper experiment list`)"
    )
    rn.add_argument(
        "--profile",
        default="quick",
        choices=("quick", "full"),
        help="quick: minutes on a CPU; full: the published figures",
    )
    rn.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    rn.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (one: small networks on a busy machine train fastest on one)")  # fmt: skip
    rn.add_argument("--reuse", action="store_true",
                    help="analyse the committed results of the benchmark the experiment names instead of measuring again "
                    "(with 'all': where an experiment can)")  # fmt: skip
    _add_results(rn)
    add_data_dir(rn)
    add_json(rn)
    rn.set_defaults(run=run_run)

    rp = sub.add_parser("report", help="assemble every finished experiment into report.html and report.md",
                        description="Write report.html into the results folder and the Markdown report beside it: every finished "
                        "experiment (its full profile where it has one, else its quick one) with its verdict, "
                        "numbers, tests and figures (linked by relative paths).", formatter_class=_Formatter)  # fmt: skip
    _add_results(rp)
    rp.add_argument("--markdown", metavar="FILE.md",
                    help="the Markdown report (default: beside the results folder, named after it: docs/experiments.md)")  # fmt: skip
    add_json(rp)
    rp.set_defaults(run=run_report)


def run_list(args, out) -> dict:
    from deeper.experiments import PROFILES, list_experiments, load_result
    from deeper.experiments.results import default_results_dir

    root = args.results or default_results_dir()
    rows = []
    for e in list_experiments(args.pattern):
        verdicts = {}
        for profile in PROFILES:
            doc = load_result(root, e.name, profile)
            if doc is not None:
                verdicts[profile] = doc["verdict"]
        rows.append({"name": e.name, "title": e.title, "claim": e.claim, "sources": [str(s) for s in e.sources],
                     "profiles": {k: v.description for k, v in e.profiles.items()}, "benchmark": e.benchmark,
                     "verdicts": verdicts})  # fmt: skip
    for r in rows:
        done = ", ".join(f"{k}: {v}" for k, v in r["verdicts"].items()) or "not run"
        out.line(f"{r['name']}  [{done}]")
        out.line(f"  {r['claim']}")
        out.line(f"  source: {'; '.join(r['sources'])}")
    return {"experiments": rows, "results": str(root)}


def run_run(args, out) -> dict:
    from deeper.errors import ConfigError
    from deeper.experiments import get_experiment, list_experiments, run_experiment

    if args.name == "all":
        names = [e.name for e in list_experiments()]
    else:
        names = [n.strip() for n in args.name.split(",") if n.strip()]
        if not names:
            raise ConfigError("name at least one experiment (or 'all')")
        for n in names:
            get_experiment(n)  # an unknown name fails before anything runs
    docs = []
    for n in names:
        # `all --reuse`: the committed benchmark results where an experiment can read them, a fresh run elsewhere
        reuse = args.reuse and (args.name != "all" or get_experiment(n).reusable)
        out.line(f"{n} ({args.profile}):")
        doc = run_experiment(n, args.profile, results=args.results, device=args.device, data_dir=args.data_dir,
                             reuse=reuse, threads=args.threads, log=out.line)  # fmt: skip
        out.line(f"{n}: {doc['verdict'].upper()} - {doc['because']} ({doc['seconds']:.0f} s)")
        docs.append(
            {k: doc[k] for k in ("experiment", "profile", "verdict", "because", "numbers", "seconds")}
        )
    return {"runs": docs}


def run_report(args, out) -> dict:
    from deeper.experiments.report import write_report
    from deeper.experiments.results import default_results_dir

    root = args.results or default_results_dir()
    if args.markdown is not None and not args.markdown.lower().endswith(".md"):
        from deeper.errors import ConfigError

        raise ConfigError(f"--markdown {args.markdown!r} must be a .md file")
    r = write_report(root, args.markdown)
    out.line(
        f"wrote {r['html']} and {r['markdown']}: {r['finished']} of {r['registered']} experiments finished"
    )
    return r
