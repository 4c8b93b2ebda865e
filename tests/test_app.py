"""The web app without a browser: Flask's test client for the pages and the JSON API, and ``deeper serve``'s
command line.  (End to end in Chromium: tests/test_app_browser.py.)"""

from __future__ import annotations

import base64
import io
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.helpers import run


@pytest.fixture
def weights(tmp_path) -> Path:
    """An (untrained) LeNet-5 run folder: model.safetensors with classifier metadata, result.json."""
    import torch

    from deeper.models import create_model, save_weights

    torch.manual_seed(0)
    folder = tmp_path / "runs" / "lenet5-mnist"
    meta = {"task": "classify", "model": "lenet5", "num_classes": 10, "in_chans": 1, "img_size": 28,
            "dataset": "mnist", "classes": [str(i) for i in range(10)]}  # fmt: skip
    save_weights(create_model("lenet5", num_classes=10, in_chans=1), folder / "model.safetensors", meta)
    (folder / "result.json").write_text('{"task": "classify", "model": "lenet5", "test_accuracy": 0.1}')
    return folder


def digit_png(angle: float = 0.0) -> bytes:
    im = Image.new("L", (280, 280), 0)
    d = ImageDraw.Draw(im)
    d.line([(140 - 60 * angle, 40), (140 + 60 * angle, 240)], fill=255, width=18)
    d.line([(90, 60), (190, 60)], fill=255, width=18)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def client(weights=None, runs=None, **kw):
    from deeper.app import create_app

    app = create_app([str(w) for w in weights or []], runs_dir=runs or "no-such-runs", device="cpu", **kw)
    app.testing = True
    return app.test_client()


def test_the_drawing_is_answered_exactly_as_deeper_predict_answers_the_same_png(weights, tmp_path):
    from deeper.data.images import prepare_image
    from deeper.inference import predict_files

    c = client([weights])
    for angle in (0.0, 0.4, -0.3):
        png = digit_png(angle)
        r = c.post("/api/predict", data=png, content_type="image/png")
        assert r.status_code == 200, r.get_json()
        [a] = r.get_json()["answers"]
        (tmp_path / "d.png").write_bytes(png)
        [expected], _ = predict_files(weights, [str(tmp_path / "d.png")], device="cpu")
        assert a["task"] == "classify" and a["answer"]["label"] == expected["label"]
        assert a["answer"]["probabilities"] == expected["probabilities"]  # the same floats
        assert np.array_equal(
            np.array(a["input"]), np.round(prepare_image(tmp_path / "d.png", (1, 28, 28)) * 255)
        )
        assert "image" not in a["answer"] and str(tmp_path) not in a["text"]


def test_every_script_and_style_is_served_by_the_app(weights):
    c = client([weights], runs=weights.parent)
    pages = ["/", "/runs", f"/run?name={weights.name}", f"/run/summary?name={weights.name}"]
    for page in pages:
        r = c.get(page)
        assert r.status_code == 200, page
        html = r.get_data(as_text=True)
        refs = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert refs, page
        for ref in refs:
            assert not re.match(r"^(https?:)?//", ref), f"{page} loads {ref} from elsewhere"
        for ref in re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html):
            assert c.get(ref).status_code == 200, ref


def test_without_weights_the_page_says_how_to_train_one(tmp_path):
    from deeper.app.server import TRAIN_HINT

    c = client(runs=tmp_path / "empty")
    html = c.get("/").get_data(as_text=True)
    assert "No model is loaded" in html and TRAIN_HINT in html
    r = c.post("/api/predict", data=digit_png(), content_type="image/png")
    assert r.status_code == 409 and TRAIN_HINT in r.get_json()["error"]


def test_without_weights_the_page_offers_the_newest_run_and_uses_it(weights, tmp_path):
    older = weights.parent / "older"
    older.mkdir()
    (older / "model.safetensors").write_bytes((weights / "model.safetensors").read_bytes())
    os.utime(older / "model.safetensors", (time.time() - 3600, time.time() - 3600))
    c = client(runs=weights.parent)
    html = c.get("/").get_data(as_text=True)
    assert f"Use {weights.name}" in html and "Use older" not in html
    r = c.post("/api/use", json={"run": weights.name})
    assert r.status_code == 200 and [m["name"] for m in r.get_json()["models"]] == [weights.name]
    assert c.post("/api/predict", data=digit_png(), content_type="image/png").status_code == 200
    assert c.post("/api/use", data={"run": "older"}).status_code == 302  # the page's form: back to drawing
    assert len(c.get("/api/models").get_json()["models"]) == 2


@pytest.mark.parametrize("name", ["../", "..", "/etc", "lenet5-mnist/../..", "", "nope"])
def test_only_runs_under_the_runs_folder_can_be_opened(weights, name):
    c = client(runs=weights.parent)
    assert c.get("/run", query_string={"name": name}).status_code == 404
    assert c.post("/api/use", json={"run": name}).status_code == 400
    r = c.get("/run/file", query_string={"name": weights.name, "file": "../model.safetensors"})
    assert r.status_code == 404


def test_a_bad_image_is_a_one_line_error(weights):
    c = client([weights])
    r = c.post("/api/predict", data=b"not a png at all", content_type="image/png")
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert "not a readable image" in error and "\n" not in error
    assert c.post("/api/predict", data=b"", content_type="image/png").status_code == 400


def test_runs_are_found_newest_first_below_the_root(tmp_path):
    from deeper.app.runs import find_runs, newest_run

    root = tmp_path / "runs"
    for i, name in enumerate(["a", "b/member-0", "b/member-1", "c/checkpoints/x"]):
        d = root / name
        d.mkdir(parents=True)
        (d / "result.json").write_text("{}")
        os.utime(d / "result.json", (1000 + i, 1000 + i))
    (root / "a" / "model.safetensors").write_bytes(b"")
    os.utime(root / "a" / "model.safetensors", (900, 900))
    assert [r.name for r in find_runs(root)] == ["b/member-1", "b/member-0", "a"]
    assert newest_run(root).name == "a"  # the newest with weights
    assert find_runs(tmp_path / "missing") == [] and newest_run(tmp_path / "missing") is None


def test_a_task_that_answers_with_boxes_and_images_is_shown_through_its_own_predict(weights, monkeypatch):
    """Detection, segmentation or captioning weights answer through their task's ``predict``: the page gets
    its boxes, caption and the images it wrote, never a temporary path."""
    import deeper.inference
    from deeper.tasks.base import Task

    class Boxes(Task):
        name = "boxes"
        description = "a stand-in for a detection task"

        def predict(self, model, meta, images, *, device, out_dir=None, **_):
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            w, h = Image.open(images[0]).size
            Image.new("RGB", (w, h), (255, 0, 0)).save(out / "drawn.png")
            return [{"image": images[0], "boxes": [[1.0, 2.0, 30.0, 40.0]], "labels": [3], "names": ["3"],
                     "scores": [0.9], "size": [w, h], "caption": "a three", "output": str(out / "drawn.png")}]  # fmt: skip

        def describe_prediction(self, answer, **_):
            return f"{answer['image']}: 1 found"

    monkeypatch.setattr(deeper.inference, "task_of", lambda meta: Boxes())
    r = client([weights]).post("/api/predict", data=digit_png(), content_type="image/png")
    [a] = r.get_json()["answers"]
    assert a["task"] == "boxes" and a["answer"]["boxes"] == [[1.0, 2.0, 30.0, 40.0]]
    assert a["answer"]["caption"] == "a three" and "output" not in a["answer"]
    assert a["text"] == "drawing: 1 found" and "input" not in a
    [img] = a["images"]
    png = base64.b64decode(img["src"].split(",", 1)[1])
    assert Image.open(io.BytesIO(png)).size == (280, 280)


def test_the_experiments_report_is_linked_when_it_exists(weights, tmp_path, monkeypatch):
    report = tmp_path / "exp" / "report.html"
    report.parent.mkdir()
    report.write_text("<html><body><h1>Experiments</h1><img src='fig.png'></body></html>")
    (report.parent / "fig.png").write_bytes(digit_png())
    c = client(runs=weights.parent, report=report)
    assert 'href="/report/"' in c.get("/").get_data(as_text=True)
    assert b"Experiments" in c.get("/report", follow_redirects=True).data
    assert c.get("/report/fig.png").status_code == 200  # its relative link, from /report/
    monkeypatch.chdir(tmp_path)  # away from the repository's own docs/experiments/report.html
    assert 'href="/report/"' not in client(runs=weights.parent).get("/").get_data(as_text=True)


def test_serve_refuses_bad_input_in_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "serve", "--weights", str(tmp_path / "missing.safetensors"))
    assert code == 1 and err.count("\n") == 1 and "no such run folder or weights file" in err
    code, _, err = run(capsys, "serve", "--port", "70000")
    assert code == 2 and "--port" in err and err.count("\n") == 1
    code, _, err = run(capsys, "serve", "--report", str(tmp_path / "none.html"))
    assert code == 1 and "--report" in err and err.count("\n") == 1


def test_serve_says_when_the_port_is_taken(weights, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _, err = run(
            capsys, "serve", "--weights", str(weights), "--port", str(port), "--runs", str(weights.parent)
        )
    assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in err and err.count("\n") == 1


def test_serve_json_says_where_it_listens(weights, monkeypatch, capsys):
    import deeper.app.server

    def fake_serve(app, *, host, port, threads, on_ready):  # no real server: the command's own output
        assert (host, port) == ("127.0.0.1", 0)
        on_ready(f"http://{host}:4321/")

    monkeypatch.setattr(deeper.app.server, "serve", fake_serve)
    code, out, err = run(capsys, "serve", "--weights", str(weights), "--port", "0", "--json")
    assert code == 0 and "listening on http://127.0.0.1:4321/" in err
    from tests.helpers import last_json

    r = last_json(out)
    assert r["url"] == "http://127.0.0.1:4321/" and [m["name"] for m in r["models"]] == [weights.name]


@pytest.mark.parametrize(
    "task, model, meta, images",
    [
        ("segment", "unet", {"num_classes": 11, "in_chans": 1, "model_kwargs": {"width": 4, "depth": 2},
                             "classes": ["background", *map(str, range(10))]}, {"drawing_mask.png", "drawing_overlay.png"}),
        ("detect", "yolo-v1", {"num_classes": 10, "in_chans": 1, "img_size": 128, "model_kwargs": {"width": 8},
                               "classes": list(map(str, range(10)))}, {"drawing.detections.png"}),
    ],
)  # fmt: skip
def test_segmentation_and_detection_weights_answer_with_their_tasks_images(
    task, model, meta, images, tmp_path
):
    """Real tasks of the registry (untrained weights): a mask overlay, the scene with its boxes."""
    import torch

    from deeper.models import create_model, save_weights

    torch.manual_seed(0)
    kwargs = {k: v for k, v in meta.items() if k not in ("classes", "model_kwargs")} | meta["model_kwargs"]
    folder = tmp_path / "runs" / task
    save_weights(
        create_model(model, **kwargs), folder / "model.safetensors", {"task": task, "model": model, **meta}
    )
    c = client([folder], runs=folder.parent)
    [a] = c.post("/api/predict", data=digit_png(), content_type="image/png").get_json()["answers"]
    assert a["task"] == task and {i["name"] for i in a["images"]} == images
    assert "/tmp" not in a["text"] and str(tmp_path) not in str(a)
    if task == "detect":
        assert a["answer"]["size"] == [280, 280] and isinstance(a["answer"]["boxes"], list)
    else:
        assert sum(a["answer"]["classes"].values()) == 280 * 280
    page = c.get("/run/summary", query_string={"name": task})
    assert page.status_code == 200  # a table, or one line saying why there is none
