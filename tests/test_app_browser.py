"""``deeper serve`` end to end: a real server process, driven by headless Chromium through Playwright.

The browser is the system's Chromium (``make setup`` installs it with apt-get; ``DEEPER_CHROMIUM`` names
another); Playwright never downloads one.  Without a browser (or without Playwright) these tests are
skipped, saying why.  Screenshots of every page go to ``$DEEPER_ARTIFACTS/screenshots`` (default:
``build/screenshots``), kept as CI artifacts.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.request import Request, urlopen

import numpy as np
import pytest

from tests.conftest import REAL_DATA, REPO
from tests.helpers import last_json, run

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("DEEPER_ARTIFACTS", REPO / "build")) / "screenshots"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The system's Chromium (``DEEPER_CHROMIUM`` first), or None."""
    for name in (os.environ.get("DEEPER_CHROMIUM"), *BROWSERS):
        if name and (path := shutil.which(name)):
            return path
    return None


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def served_run(tmp_path_factory) -> Path:
    """A LeNet-5 trained for three epochs on 12,000 MNIST images (about ten seconds), in a runs folder."""
    if REAL_DATA is None:
        pytest.skip("real MNIST files not available (set DEEPER_DATA)")
    from deeper.train import TrainConfig, fit

    root = tmp_path_factory.mktemp("runs")
    out = root / "lenet5-mnist"
    fit(TrainConfig(model="lenet5", data="mnist", subset=12000, epochs=3, val_size=500, seed=0,
                    data_dir=str(REAL_DATA), out=str(out), tensorboard=False, progress=False))  # fmt: skip
    return out


def launch(*args: str) -> subprocess.Popen:
    """``deeper serve ARGS --port 0`` as its own process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "deeper", "serve", "--port", "0", "--device", "cpu", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip


def listening(proc: subprocess.Popen, timeout: float = 120.0) -> str:
    """The address ``proc`` (a ``deeper serve``) prints once it listens."""
    deadline, lines = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "listening on " in line:
            return line.split("listening on ")[1].split()[0]
    proc.kill()
    raise AssertionError("deeper serve did not start:\n" + "".join(lines))


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def servers(served_run):
    """Two servers started side by side: one given the run's weights, one given none."""
    procs = {
        "weights": launch(
            "--weights", str(served_run), "--runs", str(served_run.parent), "--data-dir", str(REAL_DATA)
        ),
        "none": launch("--runs", str(served_run.parent)),
    }
    try:
        yield {k: listening(p) for k, p in procs.items()}
    finally:
        for p in procs.values():
            stop(p)


@pytest.fixture(scope="module")
def server(servers) -> str:
    return servers["weights"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])"
    )
    path = find_chromium()
    if path is None:
        pytest.skip(
            "no Chromium found (install it with `make setup`, apt-get install chromium, or set DEEPER_CHROMIUM)"
        )
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield pg
    context.close()
    assert not errors, f"the page logged errors: {errors}"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


# ------------------------------------------------------------------------------------------- helpers

SHOWN = """() => {
  const m = document.querySelector('.model');
  return {
    label: Number(m.querySelector('.label').dataset.label),
    name: m.querySelector('.label').textContent,
    probabilities: [...m.querySelectorAll('.bar')].map(b => Number(b.dataset.p)),
    texts: [...m.querySelectorAll('.bar .value')].map(v => Number(v.textContent)),
    input: (() => { const c = m.querySelector('canvas.input');
                    return [...c.getContext('2d').getImageData(0, 0, c.width, c.height).data]; })(),
    png: document.getElementById('pad').toDataURL('image/png'),
  };
}"""


def wait_answered(page) -> None:
    page.wait_for_function("document.getElementById('results').dataset.state === 'done'", timeout=30_000)


def save_png(data_url: str, path: Path) -> Path:
    path.write_bytes(base64.b64decode(data_url.split(",", 1)[1]))
    return path


def deeper_predict(capsys, weights: Path, images: list[Path]) -> list[dict]:
    """What ``deeper predict --json`` answers for ``images``."""
    code, out, err = run(
        capsys, "predict", "--weights", str(weights), "--device", "cpu", *map(str, images), "--json"
    )
    assert code == 0, err
    return last_json(out)["predictions"]


def assert_same(shown: dict, answer: dict) -> None:
    assert shown["label"] == answer["label"] and shown["name"] == answer["name"]
    assert np.allclose(shown["probabilities"], answer["probabilities"], atol=1e-4, rtol=0)
    assert np.allclose(
        shown["texts"], answer["probabilities"], atol=1e-4, rtol=0
    )  # the numbers a person reads
    assert abs(sum(shown["probabilities"]) - 1) < 1e-4


# ------------------------------------------------------------------------------------------- tests


def test_a_stroke_drawn_with_the_mouse_is_answered_as_deeper_predict_answers(
    page, server, served_run, tmp_path, capsys
):
    page.goto(server)
    pad = page.locator("#pad").bounding_box()
    x0, y0 = pad["x"], pad["y"]
    # a "7": the bar, then the stem, with real mouse events (pointerdown/move/up)
    page.mouse.move(x0 + 70, y0 + 60)
    page.mouse.down()
    page.mouse.move(x0 + 210, y0 + 60, steps=12)
    page.mouse.move(x0 + 120, y0 + 240, steps=16)
    page.mouse.up()
    wait_answered(page)
    shown = page.evaluate(SHOWN)
    png = save_png(shown["png"], tmp_path / "stroke.png")
    [answer] = deeper_predict(capsys, served_run, [png])
    assert_same(shown, answer)
    # the 28x28 image drawn on the page is the one the model received
    from deeper.data.images import prepare_image

    expected = np.round(prepare_image(png, (1, 28, 28))[0] * 255)
    got = np.array(shown["input"], dtype=float).reshape(28, 28, 4)
    assert np.array_equal(got[..., 0], expected) and expected.max() == 255
    shot(page, "draw-stroke")
    # Clear empties the pad and the answers
    page.click("#clear")
    assert page.locator(".model").count() == 0
    assert (
        page.evaluate(
            "[...document.getElementById('pad').getContext('2d').getImageData(0,0,280,280).data].some((v, i) => i % 4 < 3 && v)"
        )
        is False
    )


INJECT = """async ([pixels, side]) => {
  const pad = document.getElementById('pad');
  const g = pad.getContext('2d');
  const img = new ImageData(side, side);
  pixels.forEach((v, i) => { img.data.set([v, v, v, 255], 4 * i); });
  const small = document.createElement('canvas');
  small.width = small.height = side;
  small.getContext('2d').putImageData(img, 0, 0);
  window.deeperPad.clear();
  g.imageSmoothingEnabled = false;
  g.drawImage(small, 0, 0, pad.width, pad.height);
  await window.deeperPad.predict();
}"""


def test_real_mnist_test_digits_injected_into_the_canvas_get_deeper_predicts_answers(
    page, server, served_run, tmp_path, capsys
):
    from deeper.data import load_dataset

    test = load_dataset("mnist", "test", data_dir=str(REAL_DATA))
    labels = test.labels.numpy()
    picks = [int(np.flatnonzero(labels == k)[0]) for k in range(10)]  # the first test digit of each class
    page.goto(server)
    shown_all, pngs = [], []
    for i in picks:
        page.evaluate(INJECT, [test.images[i, 0].numpy().reshape(-1).tolist(), 28])
        wait_answered(page)
        shown = page.evaluate(SHOWN)
        shown_all.append(shown)
        pngs.append(save_png(shown["png"], tmp_path / f"mnist-{i}.png"))
        if i == picks[3]:
            shot(page, "draw-mnist-digit")
    answers = deeper_predict(capsys, served_run, pngs)
    for shown, answer in zip(shown_all, answers):
        assert_same(shown, answer)
    right = sum(s["label"] == labels[i] for s, i in zip(shown_all, picks))
    assert right >= 7, (
        f"only {right} of 10 real test digits read right by a model of {json.loads((served_run / 'result.json').read_text())['test_accuracy']:.3f}"
    )


def test_the_run_pages_show_curves_gallery_and_layer_table(page, server, served_run):
    from deeper.analysis.summary import summarize
    from deeper.inference import misclassified
    from deeper.models import model_from_weights

    page.goto(server + "runs")
    page.click(f"text={served_run.name}")
    assert page.locator("img[alt='curves.png']").evaluate("i => i.complete && i.naturalWidth > 100")
    result = json.loads((served_run / "result.json").read_text())
    assert f"{result['test_accuracy']:.6g}" in page.locator("table.result").inner_text()
    assert page.locator("table.metrics tbody tr").count() == result["epochs"]
    shot(page, "run")

    page.click("text=misclassified gallery")
    _, wrong, _ = misclassified(
        served_run / "model.safetensors", "mnist", device="cpu", data_dir=str(REAL_DATA)
    )
    assert page.locator("#gallery-count").inner_text().startswith(f"{len(wrong)} of 10,000 mnist")
    assert page.locator("img.gallery").evaluate("i => i.complete && i.naturalWidth > 100")
    shot(page, "gallery")

    page.goto(server + f"run?name={served_run.name}")
    page.click("text=layer table")
    net, _ = model_from_weights(served_run / "model.safetensors")
    s = summarize(net, (1, 28, 28))
    assert page.locator("table.layers").first.locator("tbody tr").count() == len(s.rows)
    assert f"{s.total_params:,} parameters" in page.locator("#summary-total").inner_text()
    shot(page, "summary")


def test_without_weights_the_page_offers_the_newest_run_and_draws_with_it(browser, servers, served_run):
    url = servers["none"]
    pg = browser.new_page()
    try:
        pg.goto(url)
        assert served_run.name in pg.locator("#no-model").inner_text()
        shot(pg, "no-weights")
        pg.click("#use-newest")
        pg.wait_for_selector("#pad")
        assert pg.locator("#no-model").count() == 0
        box = pg.locator("#pad").bounding_box()
        pg.mouse.move(box["x"] + 140, box["y"] + 50)
        pg.mouse.down()
        pg.mouse.move(box["x"] + 140, box["y"] + 230, steps=10)
        pg.mouse.up()
        wait_answered(pg)
        assert pg.locator(".model .bar").count() == 10
    finally:
        pg.close()


def test_fifty_concurrent_predictions_are_all_answered(server, served_run, tmp_path):
    """A bounded local load test: 50 requests at once, to this machine's own server, each answered
    correctly (the same answer as one request alone)."""
    from PIL import Image

    from deeper.data import load_dataset

    test = load_dataset("mnist", "test", data_dir=str(REAL_DATA))
    pngs = []
    for i in range(5):
        p = tmp_path / f"{i}.png"
        Image.fromarray(test.images[i, 0].numpy()).resize((280, 280), Image.Resampling.NEAREST).save(p)
        pngs.append(p.read_bytes())

    def ask(k: int) -> dict:
        req = Request(server + "api/predict", data=pngs[k % 5], headers={"Content-Type": "image/png"})
        with urlopen(req, timeout=120) as r:
            assert r.status == 200
            return json.loads(r.read())["answers"][0]["answer"]

    alone = [ask(k) for k in range(5)]
    start = time.monotonic()
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(ask, range(50)))
    seconds = time.monotonic() - start
    assert len(answers) == 50
    for k, a in enumerate(answers):
        assert a["label"] == alone[k % 5]["label"]
        assert np.allclose(a["probabilities"], alone[k % 5]["probabilities"], atol=1e-6)
    assert seconds < 60
