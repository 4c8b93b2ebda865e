"""Text to image in two stages (issue 23): the scenes' layouts as targets, the layout network's teacher forcing
and sampling, the renderer, the glyph sources, task ``text-layout`` and ``deeper generate --prompt`` on it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from deeper.errors import DeeperError
from deeper.models import create_model, list_models
from deeper.models.generate.layout import GlyphBank, LayoutNet, render
from deeper.tasks.text_to_image import layouts_of
from deeper.train import TrainConfig, fit
from tests.helpers import dry_run_options, last_json, run

QUIET = dict(tensorboard=False, progress=False, device="cpu")


def test_the_model_is_registered_in_its_own_family():
    assert list_models(family="layout") == ["layout-gru"]
    net = create_model("layout-gru", num_classes=10, in_chans=1)  # the defaults build (the catalog counts them)
    assert net.layout.slots == 3 and isinstance(net.glyphs, GlyphBank)
    with pytest.raises(ValueError, match="one-channel"):
        create_model("layout-gru", num_classes=10, in_chans=3, vocab=8)


def test_layouts_are_read_left_to_right_with_ink_centres():
    scenes = SimpleNamespace(
        boxes=torch.tensor([[[40, 0, 50, 20], [2, 10, 12, 30], [0, 0, 0, 0]]], dtype=torch.float32),
        labels=torch.tensor([[7, 3, -1]]),
        counts=torch.tensor([2]),
        sizes=torch.tensor([[24, 30, 0]]),
    )
    labels, centres, sizes, counts = layouts_of(scenes)
    assert labels.tolist() == [[[3, 7, 0]]] and sizes.tolist() == [[[30, 24, 0]]] and counts.tolist() == [2]
    assert centres[0, 0, :2].tolist() == [[7.0, 20.0], [45.0, 10.0]]


def test_layouts_in_mention_order_follow_each_caption():
    scenes = SimpleNamespace(
        boxes=torch.tensor([[[40, 0, 50, 20], [2, 30, 12, 50], [20, 40, 30, 60]]], dtype=torch.float32),
        labels=torch.tensor([[7, 3, 3]]),
        counts=torch.tensor([3]),
        sizes=torch.tensor([[24, 30, 28]]),
        captions=[["a 3 below a 7", "the rightmost digit is a 7", "a 3, a 7 and a 3", "not a caption"]],
    )
    labels, centres, sizes, counts = layouts_of(scenes, "mention")
    assert labels.tolist() == [[[3, 7, 3], [7, 3, 3], [3, 7, 3], [3, 3, 7]]]  # the last: left to right
    assert centres[0, 0, :, 0].tolist() == [7.0, 45.0, 25.0] and sizes[0, 1].tolist() == [24, 30, 28]


def test_slot_targets_bin_the_centres_and_index_the_sizes():
    net = LayoutNet(8, slots=2, height=64, width=64, bins=16, min_size=20, max_size=32, dim=8)
    cls, x, y, s = net.targets(
        torch.tensor([[3, 7]]),
        torch.tensor([[[0.0, 63.9], [33.0, 4.0]]]),
        torch.tensor([[20, 32]]),
        torch.tensor([1]),
    )
    assert (
        cls.tolist() == [[3, 0]]
        and x.tolist() == [[0, 0]]
        and y.tolist() == [[15, 0]]
        and s.tolist() == [[0, 0]]
    )


def _glyph(h: int, w: int) -> torch.Tensor:
    g = torch.zeros(28, 28)
    g[14 - h // 2 : 14 - h // 2 + h, 14 - w // 2 : 14 - w // 2 + w] = 1.0
    return g


def test_render_centres_the_ink_and_keeps_it_inside_the_canvas():
    glyphs = torch.stack([_glyph(20, 10), _glyph(20, 10), torch.zeros(28, 28)])
    scene = render(
        glyphs, torch.tensor([[20.0, 30.0], [62.0, 1.0], [40.0, 40.0]]), torch.tensor([28, 28, 28]), 64, 64
    )
    assert scene.shape == (1, 64, 64) and scene.max() == 1
    from deeper.generate.text import find_blobs

    boxes = find_blobs(scene[0].numpy())
    assert boxes.tolist() == [
        [15, 20, 25, 40],
        [54, 0, 64, 20],
    ]  # centred on (20, 30); the second moved inside


def test_render_draws_overlapping_ink_with_max():
    a, b = torch.zeros(28, 28), torch.zeros(28, 28)
    a[4:24, 4:24], b[4:24, 4:24] = 0.5, 0.25
    scene = render(
        torch.stack([a, b]), torch.tensor([[32.0, 32.0], [32.0, 32.0]]), torch.tensor([28, 28]), 64, 64
    )
    assert scene.max() == 0.5


def test_the_glyph_bank_draws_the_asked_class_only():
    bank = GlyphBank(num_classes=3, per_class=4)
    for k in range(3):
        bank.glyphs[k] = k * 50 + torch.arange(4)[:, None, None]  # class k's glyphs: level k * 50 + i
    levels = (bank(torch.tensor([2, 0, 1, 2] * 5), torch.Generator().manual_seed(0))[:, 0, 0] * 255).round()
    assert [int(v) // 50 for v in levels] == [2, 0, 1, 2] * 5 and len(set(levels.tolist())) > 3


def test_the_layout_network_learns_captions_to_layouts():
    """Teacher forcing on two captions with two layouts; at a low temperature the samples are those layouts."""
    torch.manual_seed(0)
    net = LayoutNet(6, slots=3, height=64, width=64, bins=8, min_size=20, max_size=23, dim=32)
    tokens = torch.tensor([[2, 3, 0], [4, 5, 3]])
    labels = torch.tensor([[1, 4, 0], [7, 2, 9]])
    centres = torch.tensor(
        [[[8.0, 8.0], [40.0, 50.0], [0.0, 0.0]], [[4.0, 60.0], [30.0, 20.0], [60.0, 30.0]]]
    )
    sizes, counts = torch.tensor([[20, 23, 0], [21, 22, 20]]), torch.tensor([2, 3])
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    first = None
    for _ in range(150):
        loss, parts = net.loss(tokens, labels, centres, sizes, counts)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.05 * first and set(parts) == {"stop", "class", "x", "y", "size"}
    (l0, c0, s0), (l1, c1, s1) = net.sample(
        tokens, generator=torch.Generator().manual_seed(0), temperature=0.01
    )
    assert l0.tolist() == [1, 4] and l1.tolist() == [7, 2, 9]
    assert s0.tolist() == [20, 23] and s1.tolist() == [21, 22, 20]
    assert c0.tolist() == [
        [12.0, 12.0],
        [44.0, 52.0],
    ]  # the centres of the bins (8 px) of (8, 8) and (40, 50)


def test_the_loss_needs_layouts_of_the_networks_slots():
    net = LayoutNet(6, slots=3, dim=8)
    with pytest.raises(ValueError, match="layouts of 2 slots"):
        net.loss(torch.tensor([[2]]), torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2, 2),
                 torch.full((1, 2), 20), torch.tensor([1]))  # fmt: skip


# ----------------------------------------------------------------------------- the task


@pytest.fixture(scope="module")
def layout_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("layout") / "run"
    return out, fit(TrainConfig(**dry_run_options("text-layout", figures=True), **QUIET, out=str(out)))


@pytest.mark.slow
def test_text_layout_reports_the_prompt_match_and_draws_its_samples(layout_run):
    out, result = layout_run
    assert 0 <= result["test_prompt_match"] <= 1 and 0 <= result["reader_real"] <= 1
    from deeper.models.weights import load_weights

    _, meta = load_weights(out / "model.safetensors")
    assert meta["kind"] == "layout" and meta["glyphs"] == "4 real training digits per class"
    assert Image.open(out / "samples.png").size == (4 * 66 + 2, 2 * 66 + 2)


@pytest.mark.slow
def test_generate_with_a_prompt_from_a_layout_model(layout_run, tmp_path, capsys):
    code, stdout, _ = run(capsys, "generate", "--weights", str(layout_run[0]), "--prompt", "a 3 to the left of a 7",
                          "-n", "3", "-o", str(tmp_path / "ok.png"), "--json")  # fmt: skip
    assert code == 0 and last_json(stdout)["kind"] == "layout"
    assert Image.open(tmp_path / "ok.png").size == (3 * 66 + 2, 66 + 2)
    for argv, message in [
        (["--prompt", "a 3 left of a zebra"], "words the model never saw: zebra"),
        (["--prompt", "a 3", "--interpolate"], "--interpolate walks a GAN's latent space"),
        (["--prompt", "a 3", "--trajectory"], "--trajectory shows a diffusion model's steps"),
    ]:
        code, _, err = run(
            capsys, "generate", "--weights", str(layout_run[0]), "-o", str(tmp_path / "g.png"), *argv
        )
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def gan_runs(tmp_path_factory):
    """Two GAN runs of the scenes' digits: a class-conditional one and an unconditional one."""
    out = tmp_path_factory.mktemp("glyphs")
    for name, conditional in (("conditional", True), ("plain", False)):
        fit(TrainConfig(**dry_run_options("generate", conditional=conditional), **QUIET, out=str(out / name)))
    return out


@pytest.mark.slow
def test_a_class_conditional_gan_draws_the_glyphs(gan_runs, tmp_path):
    from deeper.models.weights import load_weights
    from deeper.tasks.generate import load_generator

    result = fit(TrainConfig(**dry_run_options("text-layout", glyphs=str(gan_runs / "conditional")), **QUIET,
                             out=str(tmp_path / "r")))  # fmt: skip
    assert 0 <= result["test_prompt_match"] <= 1
    state, meta = load_weights(tmp_path / "r" / "model.safetensors")
    assert meta["glyphs"].startswith("dcgan (class-conditional, digits) of ")
    gan, _ = load_generator(gan_runs / "conditional" / "model.safetensors")
    for k, v in gan.state_dict().items():  # the GAN's weights, unchanged by the layout's training
        assert torch.equal(state[f"glyphs.generator.{k}"], v)


@pytest.mark.slow
@pytest.mark.parametrize(
    "glyphs, message",
    [
        ("plain", "must be class-conditional"),
        ("layout", "a GAN run is needed"),
        ("missing", "no such run folder"),
    ],
)
def test_glyphs_must_come_from_a_class_conditional_gan_of_the_digits(
    gan_runs, layout_run, tmp_path, glyphs, message
):
    path = {"plain": gan_runs / "plain", "layout": layout_run[0], "missing": tmp_path / "nothing"}[glyphs]
    with pytest.raises(DeeperError, match=message):  # each a one-line error of the command line
        fit(TrainConfig(**dry_run_options("text-layout", glyphs=str(path)), **QUIET, out=str(tmp_path / "x")))
