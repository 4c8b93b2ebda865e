"""``deeper serve``: the draw-and-see web app (:mod:`deeper.app`)."""

from __future__ import annotations

import argparse

from deeper.cli import add_data_dir, add_json, command


@command("serve", "a local web app: draw a digit and see what trained models answer; browse runs")
def configure(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "Open the printed address in a browser. Without --weights the page offers the newest run\n"
        "under --runs (or says how to train one). Any task's weights can be served: classifiers\n"
        "show their class probabilities and the 28x28 image they receive; detection, segmentation\n"
        "and captioning models their boxes, masks and captions.\n\n"
        "examples:\n  deeper serve --weights runs/lenet5-mnist\n"
        "  deeper serve --weights runs/a runs/b/model.safetensors --port 8080\n"
        "  deeper serve            # offers the newest run under runs/"
    )
    p.add_argument(
        "--weights", nargs="+", default=[], metavar="FILE_OR_RUN",
        help="trained weights to answer with: .safetensors files or run folders (several: each answers)",
    )  # fmt: skip
    p.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port)")
    p.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (0.0.0.0 also answers other machines, e.g. a tablet to draw on)",
    )  # fmt: skip
    p.add_argument("--runs", default="runs", metavar="DIR", help="the folder of runs to browse")
    p.add_argument(
        "--report", metavar="FILE.html", help="the experiments report to show (default: found under --runs)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=8, help="requests answered at once")
    add_data_dir(p)
    add_json(p)
    p.set_defaults(run=run)


def run(args, out) -> None:
    from deeper.app.server import TRAIN_HINT, create_app, serve

    app = create_app(
        args.weights, runs_dir=args.runs, device=args.device, report=args.report, data_dir=args.data_dir
    )
    models = app.extensions["deeper"]["models"]

    def ready(url: str) -> None:
        for m in models:
            out.line(f"serving {m.name} ({m.task.name}, {m.meta.get('model', '?')}) from {m.path}")
        if not len(models):
            from deeper.app.runs import newest_run

            newest = newest_run(args.runs)
            out.line(
                f"no --weights: the page offers the newest run, {newest.name}" if newest
                else f"no --weights and no run under {args.runs}: train one with `{TRAIN_HINT}`"
            )  # fmt: skip
        out.line(f"deeper serve: listening on {url} (Ctrl-C stops)")
        out.result({"url": url, "models": [m.info() for m in models]})  # --json: as soon as it listens
        import sys

        sys.stdout.flush()

    serve(app, host=args.host, port=args.port, threads=args.threads, on_ready=ready)
