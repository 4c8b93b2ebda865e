"""The Flask application of ``deeper serve`` and the waitress server that runs it.

Pages: ``/`` (draw and see), ``/runs`` (every run), ``/run?name=...`` (one run: curves, metrics,
figures), ``/run/gallery?name=...`` (misclassified test images), ``/run/summary?name=...`` (layer
table), ``/report`` (the experiments report, when there is one).  JSON: ``GET /api/models``,
``POST /api/predict`` (body: the drawing as PNG bytes), ``POST /api/use`` (serve a run's model).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from flask import (
    Flask,
    abort,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    send_from_directory,
    url_for,
)

from deeper.app import runs as runs_mod
from deeper.app.models import MAX_IMAGE_BYTES, ModelSet
from deeper.errors import DeeperError

#: what the pages suggest when there is no trained model yet
TRAIN_HINT = "deeper train --model lenet5 --data mnist --epochs 2"


def create_app(
    weights: list[str] | None = None, *, runs_dir: str | Path = "runs", device: str = "auto",
    report: str | Path | None = None, data_dir: str | None = None,
) -> Flask:  # fmt: skip
    """The app, with ``weights`` (files or run folders) loaded: every one is checked now, so a bad
    file is a one-line error before the server starts."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_IMAGE_BYTES + 4096
    models = ModelSet(device)
    for w in weights or []:
        models.add(w)
    runs_root = Path(runs_dir)
    report_path = runs_mod.find_report(runs_root, report)
    cache = Path(tempfile.mkdtemp(prefix="deeper-serve-cache-"))
    app.extensions["deeper"] = {"models": models, "runs": runs_root, "cache": cache}

    @app.context_processor
    def common():
        return {"has_report": report_path is not None, "train_hint": TRAIN_HINT, "runs_root": str(runs_root)}

    @app.get("/favicon.ico")
    def favicon():
        return redirect(url_for("static", filename="favicon.svg"))

    # ---- draw and see
    @app.get("/")
    def draw():
        newest = runs_mod.newest_run(runs_root) if not len(models) else None
        return render_template("draw.html", models=[m.info() for m in models], newest=newest)

    @app.get("/api/models")
    def api_models():
        newest = runs_mod.newest_run(runs_root)
        return jsonify(
            {"models": [m.info() for m in models], "newest_run": newest.name if newest else None,
             "train_hint": TRAIN_HINT}
        )  # fmt: skip

    @app.post("/api/predict")
    def api_predict():
        if not len(models):
            return _error(f"no model is loaded: use a run, or train one with `{TRAIN_HINT}`", 409)
        start = time.perf_counter()
        try:
            answers = models.answer(request.get_data(cache=False))
        except DeeperError as e:
            return _error(str(e), 400)
        return jsonify({"answers": answers, "seconds": time.perf_counter() - start})

    @app.post("/api/use")
    def api_use():
        body = request.get_json(silent=True) or request.form
        name = body.get("run", "")
        try:
            model = models.add(runs_mod.resolve_run(runs_root, name))
        except DeeperError as e:
            if request.is_json:
                return _error(str(e), 400)
            abort(400, str(e))
        if request.is_json:
            return jsonify({"model": model.info(), "models": [m.info() for m in models]})
        return redirect(url_for("draw"))

    # ---- runs
    @app.get("/runs")
    def runs_page():
        found = runs_mod.find_runs(runs_root)
        rows = [{"run": r, "info": runs_mod.run_info(r.path)} for r in found]
        return render_template("runs.html", rows=rows, time=time)

    @app.get("/run")
    def run_page():
        name, path = _run_from_query()
        served = {str(Path(m.path).resolve().parent) for m in models}
        return render_template(
            "run.html", name=name, info=runs_mod.run_info(path), served=str(path) in served
        )

    @app.get("/run/file")
    def run_file():
        _, path = _run_from_query()
        file = request.args.get("file", "")
        if "/" in file or not file.endswith(".png"):
            abort(404)
        return send_from_directory(path, file, mimetype="image/png")

    @app.get("/run/gallery")
    def run_gallery():
        name, path = _run_from_query()
        try:
            g = runs_mod.gallery(path, cache, data_dir=data_dir)
            error = None
        except DeeperError as e:
            g, error = None, str(e)
        return render_template("gallery.html", name=name, gallery=g, error=error)

    @app.get("/run/gallery.png")
    def run_gallery_png():
        _, path = _run_from_query()
        try:
            g = runs_mod.gallery(path, cache, data_dir=data_dir)
        except DeeperError:
            abort(404)
        if g["png"] is None:
            abort(404)
        return send_file(g["png"], mimetype="image/png")

    @app.get("/run/summary")
    def run_summary():
        name, path = _run_from_query()
        try:
            s, error = runs_mod.layer_table(path), None
        except DeeperError as e:
            s, error = None, str(e)
        return render_template("summary.html", name=name, summary=s, error=error, human=_human)

    # ---- the experiments report
    @app.get("/report/")  # the trailing slash: the report's relative links (its figures) resolve below it
    @app.get("/report/<path:file>")
    def report_page(file: str | None = None):
        if report_path is None:
            abort(404, "no experiments report yet")
        if file is None:
            return send_file(report_path, mimetype="text/html")
        return send_from_directory(report_path.parent, file)

    def _run_from_query() -> tuple[str, Path]:
        name = request.args.get("name", "")
        try:
            return name, runs_mod.resolve_run(runs_root, name)
        except DeeperError as e:
            abort(404, str(e))

    return app


def _error(message: str, status: int):
    response = jsonify({"error": message})
    response.status_code = status
    return response


def _human(n: float) -> str:
    from deeper.analysis.summary import human

    return human(n)


def serve(app: Flask, *, host: str = "127.0.0.1", port: int = 8000, threads: int = 8, on_ready=None) -> None:
    """Serve ``app`` with waitress until Ctrl-C; ``on_ready(url)`` once it listens (port 0: a free port)."""
    from waitress.server import create_server

    try:
        server = create_server(app, host=host, port=port, threads=threads, ident="deeper")
    except OSError as e:
        raise DeeperError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.effective_port}/"
    if on_ready is not None:
        on_ready(url)
    try:
        server.run()
    finally:
        server.close()
        sys.stdout.flush()
