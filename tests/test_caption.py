"""Captioning pieces: tokens and the vocabulary, teacher forcing, greedy and beam decoding of hand-built
decoders, BLEU and CIDEr-D against their definitions, the models' shapes and the meaning check."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from deeper.data import ImageDataset
from deeper.data.captions import parse_caption
from deeper.data.scenes import generate_scenes
from deeper.errors import CheckpointError, ConfigError
from deeper.models import create_model
from deeper.models.caption.decode import beam_search, greedy
from deeper.models.caption.nic import CaptionModel
from deeper.models.caption.scores import Bleu, CiderD, cider_d
from deeper.models.caption.vocab import END_ID, PAD_ID, START_ID, UNK_ID, Vocabulary, detokenize, tokenize
from deeper.tasks import create_task
from deeper.tasks.caption import CaptionLoader, caption_tokens, letterbox, meaning_by_form


def fake_digits(n: int, seed: int) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    images = (torch.rand(n, 1, 28, 28, generator=g) > 0.6).to(torch.uint8) * 255
    return ImageDataset("fake", images, torch.randint(0, 10, (n,), generator=g), tuple("0123456789"))


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes("scenes-cap", fake_digits(300, 0), "train", n=40)


# ----------------------------------------------------------------------------- tokens and vocabulary


def test_every_grammar_caption_survives_tokens_and_ids(scenes):
    vocab = Vocabulary.build(c for caps in scenes.captions for c in caps)
    assert vocab.words[:4] == ["<pad>", "<start>", "<end>", "<unk>"]
    assert {":", ",", "and", "left", "digits"} <= set(vocab.words)
    assert vocab.words[4:] == sorted(vocab.words[4:])  # the same captions always give the same ids
    for caps in scenes.captions:
        for text in caps:
            assert detokenize(tokenize(text)) == text
            ids = vocab.ids(text)
            assert ids[0] == START_ID and ids[-1] == END_ID and UNK_ID not in ids
            assert vocab.decode(ids) == text


def test_tokenize_splits_punctuation_and_unknown_words_become_unk():
    assert tokenize("Three digits: 3, 7 and 1") == ["three", "digits", ":", "3", ",", "7", "and", "1"]
    vocab = Vocabulary.build(["a 3 and a 7"])
    ids = vocab.ids("a 9 and a 7")
    assert ids[2] == UNK_ID and vocab.decode(ids) == "a <unk> and a 7"
    batch = vocab.encode(["a 3", "a 3 and a 7"])
    assert batch.shape == (2, 7) and batch[0, 4:].tolist() == [PAD_ID] * 3
    assert vocab.decode([START_ID, vocab.index["a"], END_ID, vocab.index["7"]]) == "a"  # stops at <end>


def test_the_vocabulary_round_trips_through_json_and_refuses_a_bad_one():
    vocab = Vocabulary.build(["two 3s and a 7", "from left to right: 3, 3 and 7"])
    assert Vocabulary.from_json(vocab.to_json()) == vocab
    for text, message in [
        ("{not json", "unreadable vocabulary"),
        ('{"a": 1}', "not a list of words"),
        ('["a", "b"]', "starts with <pad>"),
        ('["<pad>", "<start>", "<end>", "<unk>", "a", "a"]', "each word once"),
    ]:
        with pytest.raises(CheckpointError, match=message):
            Vocabulary.from_json(text, "w.safetensors")


# ----------------------------------------------------------------------------- teacher forcing


class Oracle(CaptionModel):
    """Scores the true next word of each caption row highest (it is handed the captions), and records its inputs."""

    def __init__(self, tokens: torch.Tensor, vocab_size: int):
        super().__init__()
        self.tokens, self.vocab_size, self.seen = tokens, vocab_size, None
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, images, tokens, index=None):
        self.seen = tokens
        nxt = torch.cat([self.tokens[:, 1:], torch.full_like(self.tokens[:, :1], PAD_ID)], 1)
        logits = torch.full((*tokens.shape, self.vocab_size), -30.0) + self.w
        logits.scatter_(2, nxt[:, : tokens.shape[1], None], 30.0)
        return logits, None


def test_teacher_forcing_feeds_each_word_and_targets_the_next(scenes):
    vocab = Vocabulary.build(c for caps in scenes.captions for c in caps)
    loader = CaptionLoader(scenes, 8, tokens=caption_tokens(vocab, scenes.captions))
    batch = next(iter(loader))
    assert batch.tokens.shape[0] == 8 * 6 and batch.index.tolist() == [i for i in range(8) for _ in range(6)]
    assert vocab.decode(batch.tokens[7]) == scenes.captions[1][1]  # scene 1, caption 1 (no shuffling)
    task = create_task("caption")
    oracle = Oracle(batch.tokens, len(vocab))
    loss, sums, _ = task._forced(oracle, batch, 0.0)
    assert torch.equal(oracle.seen, batch.tokens[:, :-1]) and (oracle.seen[:, 0] == START_ID).all()
    assert float(loss.detach()) < 1e-6 and int(sums["tokens_correct"]) == int(sums["tokens"])
    assert int(sums["tokens"]) == int((batch.tokens[:, 1:] != PAD_ID).sum())  # padding is never a target
    # the same oracle one step late (targets not shifted) is wrong nearly everywhere
    late = Oracle(torch.cat([batch.tokens[:, :1], batch.tokens[:, :-1]], 1), len(vocab))
    loss_late, sums_late, _ = task._forced(late, batch, 0.0)
    assert float(loss_late.detach()) > 10 and int(sums_late["tokens_correct"]) < int(sums_late["tokens"]) // 4


# ----------------------------------------------------------------------------- decoding


class Markov(CaptionModel):
    """A decoder whose next-word distribution depends only on the previous word (rows of ``table``); its
    "attention" is a one-hot of the previous word, so a hypothesis' attention history can be checked."""

    attends = True

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = table.log()

    def start(self, images):
        return {"dummy": torch.zeros(images.shape[0], 1)}

    def step(self, tokens, state):
        return self.table[tokens].clone(), state, torch.nn.functional.one_hot(tokens, len(self.table)).float()


def _table(rows: dict[int, dict[int, float]], v: int = 6) -> torch.Tensor:
    t = torch.full((v, v), 1e-9)
    for prev, row in rows.items():
        for word, p in row.items():
            t[prev, word] = p
    return t / t.sum(1, keepdim=True)


A, B = 4, 5  # two words after the four specials
GREEDY_TRAP = _table({START_ID: {A: 0.6, B: 0.4}, A: {END_ID: 0.36, B: 0.34, A: 0.30}, B: {END_ID: 0.9, A: 0.1},
                      END_ID: {END_ID: 1.0}})  # fmt: skip


def test_greedy_decoding_of_a_hand_built_decoder_follows_the_most_probable_word():
    model = Markov(GREEDY_TRAP)
    (hyp,) = greedy(model, torch.zeros(1, 1, 4, 4), max_len=5)
    assert hyp.ids == [A] and hyp.ended
    assert hyp.logprob == pytest.approx(math.log(0.6) + math.log(0.36), abs=1e-5)
    assert hyp.attention.argmax(1).tolist() == [START_ID, A]  # step t looked at word t - 1
    # a decoder that never ends is cut at the length limit
    (cut,) = greedy(Markov(_table({START_ID: {A: 1.0}, A: {A: 1.0}})), torch.zeros(1, 1, 4, 4), max_len=3)
    assert cut.ids == [A, A, A] and not cut.ended


def _exhaustive(table: torch.Tensor, max_len: int) -> list[tuple[float, list[int]]]:
    """Every caption of at most ``max_len`` tokens that ends, with its log probability, best first."""
    logt, out = table.log().double(), []
    words = [w for w in range(len(table)) if w not in (PAD_ID, START_ID)]
    for n in range(max_len):
        for seq in itertools.product([w for w in words if w != END_ID], repeat=n):
            path = [START_ID, *seq, END_ID]
            out.append((float(sum(logt[a, b] for a, b in zip(path, path[1:]))), list(seq)))
    return sorted(out, key=lambda x: -x[0])


def test_beam_search_finds_what_greedy_misses_and_keeps_the_best_hypotheses():
    model = Markov(GREEDY_TRAP)
    x = torch.zeros(2, 1, 4, 4)
    (g, _) = greedy(model, x, max_len=4)
    beams = beam_search(model, x, width=2, max_len=4)
    assert len(beams) == 2 and beams[0][0].ids == [B] and beams[0][0].logprob > g.logprob
    assert beams[0][0].logprob == pytest.approx(math.log(0.4 * 0.9), abs=1e-6)
    # with a wide beam the best hypotheses are exactly the most probable captions, in order
    rng = np.random.default_rng(0)
    table = torch.tensor(rng.dirichlet(np.ones(6) * 0.5, size=6), dtype=torch.float64) + 1e-12
    table[:, [PAD_ID, START_ID]] = 0.0  # never words (the decoders rule them out)
    table /= table.sum(1, keepdim=True)
    truth = _exhaustive(table, 4)
    found = beam_search(Markov(table), torch.zeros(1, 1, 4, 4), width=40, max_len=4)[0]
    ended = [h for h in found if h.ended]
    assert [h.ids for h in ended[:5]] == [ids for _, ids in truth[:5]]
    assert [h.logprob for h in ended[:5]] == pytest.approx([lp for lp, _ in truth[:5]], abs=1e-6)
    assert all(a.logprob >= b.logprob for a, b in zip(found, found[1:]))
    for h in found:  # each hypothesis carries its own attention history, reordered with the beam
        assert h.attention.argmax(1).tolist() == [START_ID, *h.ids][: len(h.attention)]


MODELS = [("nic", {}), ("nic", {"inject": "every"}), ("show-attend-tell", {})]


@pytest.mark.parametrize(("name", "kw"), MODELS)
def test_beam_of_width_one_is_greedy_and_the_logprob_is_the_models(name, kw):
    torch.manual_seed(0)
    net = create_model(name, num_classes=12, width=0.25, embed=8, hidden=16, grid=4, **kw).eval()
    x = torch.rand(5, 1, 64, 64)
    gs = greedy(net, x, max_len=6)
    bs = beam_search(net, x, width=1, max_len=6)
    assert [g.ids for g in gs] == [b[0].ids for b in bs]
    assert [g.logprob for g in gs] == pytest.approx([b[0].logprob for b in bs], abs=1e-4)
    # the log probability is what teacher forcing gives the same words
    h = bs[0][0]
    seq = torch.tensor([[START_ID, *h.ids, *([END_ID] if h.ended else [])]])
    with torch.no_grad():
        logits, _ = net(x[:1], seq[:, :-1])
    logits[..., PAD_ID] = logits[..., START_ID] = float("-inf")
    lp = torch.log_softmax(logits.double(), -1).gather(2, seq[:, 1:, None]).sum()
    assert float(lp) == pytest.approx(h.logprob, abs=1e-4)
    wide = beam_search(net, x, width=4, max_len=6)
    assert all(b[0].logprob >= g.logprob - 1e-4 for b, g in zip(wide, gs))  # greedy sums float32 scores


# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize(("name", "kw"), MODELS)
def test_models_score_every_word_of_every_caption(name, kw):
    torch.manual_seed(0)
    net = create_model(name, num_classes=20, width=0.5, embed=16, hidden=32, **kw)
    x = torch.rand(3, 1, 64, 64)
    tokens = torch.randint(4, 20, (7, 9))
    index = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    logits, alphas = net(x, tokens, index)
    assert logits.shape == (7, 9, 20)
    if name == "show-attend-tell":
        assert alphas.shape == (7, 9, 64) and torch.allclose(alphas.sum(2), torch.ones(7, 9))
    else:
        assert alphas is None
    # a caption only sees its own image: the rows of image 1 do not change when image 0 does
    x2 = x.clone()
    x2[0] = torch.rand(1, 64, 64)
    net.eval()
    a, _ = net(x, tokens, index)
    b, _ = net(x2, tokens, index)
    assert torch.allclose(a[2:], b[2:], atol=1e-5) and not torch.allclose(a[:2], b[:2])


def test_model_options_are_checked_in_one_line():
    with pytest.raises(ConfigError, match="unknown encoder 'vgg99'"):
        create_model("nic", encoder="vgg99")
    with pytest.raises(ConfigError, match="option dropout must be a number in"):
        create_model("show-attend-tell", dropout=1.5)
    net = create_model("nic", encoder="resnet20", num_classes=10, embed=8, hidden=8)
    assert net.encoder(torch.rand(2, 1, 64, 64)).shape == (2, 64, 8, 8)


def test_a_finer_encoder_map_keeps_positions_the_last_pool_would_merge():
    """pools=2: the encoder's map before DeepConvNet's last max-pool, 17x17 for a 64x64 scene (8x8 with all three);
    two digits 4 pixels apart then fall in different cells."""
    torch.manual_seed(0)
    coarse = create_model("nic", num_classes=12, width=0.25, embed=8, hidden=16)
    fine = create_model("nic", num_classes=12, width=0.25, embed=8, hidden=16, pools=2, grid=17)
    x = torch.rand(2, 1, 64, 64)
    assert coarse.encoder(x).shape == (2, 16, 8, 8) and fine.encoder(x).shape == (2, 16, 17, 17)
    assert fine.image_embed[-1].in_features == 16 * 17 * 17
    # the same layers (an encoder trained one way starts the other), only one pool fewer
    assert {k for k in fine.encoder.state_dict()} == {k for k in coarse.encoder.state_dict()}
    net = create_model("deep-convnet", pools=1).eval()  # the zoo network: 28 -> 14, conv4's padding 2 -> 16
    assert (
        net.forward_features(torch.rand(1, 1, 28, 28)).shape == (1, 64, 16, 16)
        and net.num_features == 64 * 256
    )
    with pytest.raises(ConfigError, match="pools must be 0-3"):
        create_model("deep-convnet", pools=4)
    with pytest.raises(ConfigError, match="pools is an option of the deep-convnet encoder"):
        create_model("nic", encoder="resnet20", pools=2)


def test_nic_par_inject_sees_the_image_at_every_word():
    """inject=every: the image embedding is beside every word's input (the LSTM input is twice as wide);
    with the first input only, the image acts through the state alone."""
    torch.manual_seed(0)
    net = create_model("nic", num_classes=12, width=0.25, embed=8, hidden=16, grid=4, inject="every").eval()
    assert net.lstm.input_size == 16
    x = torch.rand(2, 1, 64, 64)
    state = net.start(x)
    assert torch.equal(state["h"], torch.zeros(2, 16)) and state["image"].shape == (2, 8)
    tokens = torch.tensor([[1, 5, 6], [1, 7, 8]])
    with torch.no_grad():
        logits, _ = net(x, tokens)
        # the same words read step by step give the same scores (step and forward agree)
        s = net.start(x)
        for t in range(3):
            lt, s, _ = net.step(tokens[:, t], s)
            assert torch.allclose(lt, logits[:, t], atol=1e-5)
        # the image still moves the last word's scores through its direct input: zeroing it changes them
        s2 = {**s, "image": torch.zeros_like(s["image"])}
        a, _, _ = net.step(tokens[:, -1], s)
        b, _, _ = net.step(tokens[:, -1], s2)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="unknown inject 'late'"):
        create_model("nic", num_classes=12, inject="late")


# ----------------------------------------------------------------------------- scores


def test_bleu_and_cider_of_identical_sentences_are_maximal_and_of_unrelated_ones_low():
    refs = [["a 3 to the left of a 7", "two digits: 3 and 7"], ["there is a 1 above a 2", "a 1 and a 2"],
            ["from left to right: 5, 6 and 4", "three digits: 5, 6 and 4"]]  # fmt: skip
    same = [r[0] for r in refs]
    other = ["the bottommost digit is an 8", "a single 9", "nine items: trouser"]
    bleu, unrelated = Bleu(4), Bleu(4)
    bleu.update(same, refs)
    unrelated.update(other, refs)
    assert float(bleu.compute()) == pytest.approx(1.0) and float(unrelated.compute()) < 0.05
    assert cider_d(same, refs)[0] > 4 * cider_d(other, refs)[0] and cider_d(other, refs)[0] < 0.5
    # identical to every reference: 10, the maximum
    assert cider_d(same, [[s] for s in same])[0] == pytest.approx(10.0)


def test_cider_d_of_a_hand_computed_corpus():
    # image 1: "a b" against "a b"; image 2: "c" against "c d".  |I| = 2 and every n-gram is in one
    # image's references, so every idf is log 2.  Image 1: cosine 1 for unigrams and bigrams, nothing
    # for 3- and 4-grams: 10 * (1 + 1) / 4.  Image 2: unigrams {c} vs {c, d}: cosine 1/sqrt(2),
    # lengths 1 vs 2: penalty exp(-1 / 72).
    mean, per_image = cider_d(["a b", "c"], [["a b"], ["c d"]])
    second = 10 * (1 / math.sqrt(2)) * math.exp(-1 / 72) / 4
    assert per_image == pytest.approx([5.0, second])
    assert mean == pytest.approx((5.0 + second) / 2)
    # clipping: saying a word more often than the reference earns nothing more
    assert cider_d(["a a a b", "c"], [["a b"], ["c d"]])[1][0] < 5.0
    # a word every image's references share carries no information (idf 0)
    assert cider_d(["x", "x"], [["x y"], ["x z"]])[0] == 0.0


def test_cider_d_agrees_with_the_coco_reference_scorer():
    cider = pytest.importorskip("pycocoevalcap.cider.cider")
    rng = np.random.default_rng(1)
    words = list("abcdefg")
    hyps, refs = [], []
    for _ in range(30):
        hyps.append(" ".join(rng.choice(words, rng.integers(2, 9))))
        refs.append([" ".join(rng.choice(words, rng.integers(2, 9))) for _ in range(rng.integers(1, 5))])
    theirs, their_scores = cider.Cider().compute_score(
        dict(enumerate(refs)), {i: [h] for i, h in enumerate(hyps)}
    )
    ours, our_scores = cider_d(hyps, refs)
    assert ours == pytest.approx(theirs) and our_scores == pytest.approx(list(their_scores))


def test_the_cider_metric_keeps_every_sentence_until_compute():
    refs = [["a 3 and a 7", "two digits: 3 and 7"], ["a 1 and a 2"], ["a single 5"]]
    hyps = ["a 3 and a 7", "a 1 and a 9", "a single 5"]
    m = CiderD()
    m.update(hyps[:2], refs[:2])
    m.update(hyps[2:], refs[2:])
    from deeper.models.caption.vocab import spaced

    expected = cider_d([spaced(h) for h in hyps], [[spaced(r) for r in rs] for rs in refs])[0]
    assert float(m.compute()) == pytest.approx(expected)


# ----------------------------------------------------------------------------- meaning


def test_meaning_by_form_checks_each_caption_against_its_scene(scenes):
    texts, truth, rows = [], [], []
    for i in range(len(scenes)):
        labels = scenes.labels[i, : int(scenes.counts[i])].tolist()
        absent = next(d for d in range(10) if d not in labels)
        for text, holds in [
            (scenes.captions[i][i % 6], True),  # the scene's own captions, every form in turn
            (f"there is a {absent}", False),
            (f"the only digit is a {labels[0]}", False),  # every scene holds 2-3 digits
        ]:
            texts.append(text)
            truth.append(holds)
            rows.append(i)
    texts.append("a purple elephant")
    truth.append(False)
    rows.append(0)
    out = meaning_by_form(texts, scenes.subset(rows), scenes.classes)
    assert out.pop("_holds") == truth
    n = len(texts)
    assert out["outside_grammar"] == pytest.approx(1 / n)
    assert out["only"] == {"share": pytest.approx(len(scenes) / n), "accuracy": 0.0}
    assert out["count"]["accuracy"] == 1.0 and out["order"]["accuracy"] == 1.0
    assert out["exists"]["accuracy"] == 0.0
    assert sum(v["share"] for k, v in out.items() if k != "outside_grammar") == pytest.approx(1 - 1 / n)


def test_letterbox_keeps_the_aspect_on_black():
    img = torch.ones(30, 120)
    out = letterbox(img, (64, 64))
    assert out.shape == (64, 64) and float(out[0].max()) == 0.0 and float(out[32].min()) > 0.99
    assert int((out > 0.5).sum(0).max()) in (16, 17)  # 30 x 120 scaled by 64/120: 16 rows high
    assert letterbox(torch.rand(64, 64), (64, 64)).shape == (64, 64)


def _far_share(ds) -> float:
    """The share of relation captions that some pair of non-neighbours (another object's centre between
    theirs along the axis) makes true."""
    far = total = 0
    for i in range(len(ds)):
        k = int(ds.counts[i])
        boxes, labels = ds.boxes[i, :k].numpy(), ds.labels[i, :k].numpy()
        for text in ds.captions[i]:
            m = parse_caption(text, ds.classes)
            if m.relation is None:
                continue
            a, rel, b = m.relation
            if rel in ("right", "below"):
                a, b = b, a
            axis = 0 if rel in ("left", "right") else 1
            c = boxes[:, axis] + boxes[:, axis + 2]
            total += 1
            far += any(
                labels[p] == a and labels[q] == b and boxes[p, axis + 2] <= boxes[q, axis]
                and any(c[p] < c[r] < c[q] for r in range(k) if r not in (p, q))
                for p in range(k) for q in range(k) if p != q
            )  # fmt: skip
    return far / total


def test_hard_scenes_relate_non_neighbours():
    from dataclasses import replace

    from deeper.data.scenes import PRESETS

    digits = fake_digits(300, 0)
    hard = generate_scenes("scenes-cap-hard", digits, "train", n=80)
    assert set(hard.counts.tolist()) == {3, 4}
    near = generate_scenes(replace(PRESETS["scenes-cap-hard"], far_relations=False), digits, "train", n=80)
    assert torch.equal(near.images, hard.images) and near.captions[0][:3] == hard.captions[0][:3]
    assert _far_share(hard) > 0.9 and _far_share(hard) > _far_share(near) + 0.15


def test_fewer_captions_per_step_rotate_over_scenes_and_epochs(scenes):
    vocab = Vocabulary.build(c for caps in scenes.captions for c in caps)
    loader = CaptionLoader(scenes, 4, tokens=caption_tokens(vocab, scenes.captions), per_scene=2)
    for epoch in (0, 1, 4):
        loader.set_epoch(epoch)
        batch = next(iter(loader))
        said = [vocab.decode(t) for t in batch.tokens]
        assert batch.index.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
        assert said == [scenes.captions[i][(i + 2 * epoch + j) % 6] for i in range(4) for j in range(2)]


def test_a_scenes_own_captions_score_full_marks_and_wrong_digits_do_not(scenes):
    from deeper.tasks.caption import score_captions

    own = [caps[i % 3] for i, caps in enumerate(scenes.captions)]  # count, order, tally in turn
    s = score_captions(own, scenes, scenes.classes)
    assert s["meaning_accuracy"] == 1.0 and all(s[f"bleu{n}"] == pytest.approx(1.0) for n in range(1, 5))
    shifted = [" ".join(str((int(w) + 1) % 10) if w.isdigit() else w for w in t.split(" ")) for t in own]
    t = score_captions(shifted, scenes, scenes.classes)
    assert t["meaning_accuracy"] < 0.2 and t["bleu4"] < 0.6 and t["cider"] < s["cider"] / 2


def test_the_encoder_starts_from_a_classifiers_convolutions(tmp_path):
    """encoder_weights: a DeepConvNet classifier's convolutions (same width and norm) start NIC's encoder,
    its head is left out; another width is a one-line error, not a half-loaded encoder."""
    from deeper.models.weights import save_weights
    from deeper.tasks.caption import _start_encoder

    torch.manual_seed(0)
    clf = create_model("deep-convnet", num_classes=10, norm="batch", width=0.5)
    with torch.no_grad():
        clf.norm3.running_mean.fill_(0.25)
    path = save_weights(clf, tmp_path / "clf.safetensors")
    nic = create_model("nic", num_classes=20, width=0.5, embed=16, hidden=16)
    assert not torch.equal(nic.encoder.cnn.conv2.weight, clf.conv2.weight)
    _start_encoder(nic, str(path))
    for name in ("conv1.weight", "conv6.bias", "norm3.running_mean", "norm5.weight"):
        assert torch.equal(nic.encoder.cnn.state_dict()[name], clf.state_dict()[name]), name
    wide = save_weights(
        create_model("deep-convnet", num_classes=10, norm="batch", width=1.0), tmp_path / "w.st"
    )
    with pytest.raises(ConfigError, match="do not fit this encoder: 6 of its 6 convolutions"):
        _start_encoder(nic, str(wide))
    with pytest.raises(CheckpointError, match="not found"):
        _start_encoder(nic, str(tmp_path / "none.safetensors"))
