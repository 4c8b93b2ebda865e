"""Transfer learning: pretrained weights in, classifier replaced, features optionally frozen."""

import json

import pytest
import torch
from torch import nn

from deeper.cli import main
from deeper.errors import CheckpointError, ConfigError
from deeper.models import create_model, load_weights, save_weights
from deeper.models.weights import weights_file
from deeper.train import TrainConfig, fit
from deeper.train.transfer import freeze_features, load_pretrained

pytestmark = pytest.mark.usefixtures("one_thread")


def _save(model: nn.Module, path, name: str, in_chans=1, img_size=28, **extra):
    meta = {
        "model": name,
        "num_classes": model.get_classifier().out_features,
        "in_chans": in_chans,
        "img_size": img_size,
    }
    save_weights(model, path, {**meta, **extra})
    return path


@pytest.fixture
def lenet_src(tmp_path):
    torch.manual_seed(0)
    return _save(create_model("lenet5"), tmp_path / "src.safetensors", "lenet5")


def test_everything_but_the_classifier_is_copied(lenet_src):
    state, _ = load_weights(lenet_src)
    torch.manual_seed(1)
    target = create_model("lenet5", num_classes=4)
    load_pretrained(target, lenet_src, model_name="lenet5")
    own = target.state_dict()
    for k, v in state.items():
        if k.startswith("head.fc3."):
            assert own[k].shape[0] == 4  # the new classes
        else:
            assert torch.equal(own[k], v), k
    assert not torch.equal(own["head.fc3.weight"], state["head.fc3.weight"][:4])


def test_mismatches_are_clear_errors(lenet_src, tmp_path):
    with pytest.raises(ConfigError, match="holds weights for model 'lenet5', not 'alexnet'"):
        load_pretrained(create_model("alexnet", img_size=28), lenet_src, model_name="alexnet")
    with pytest.raises(CheckpointError, match=r"trained on 1-channel 28px images.*features.conv1.weight"):
        load_pretrained(create_model("lenet5", in_chans=3), lenet_src)
    with pytest.raises(CheckpointError, match="no such run folder or weights file"):
        weights_file(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no model.safetensors in this folder"):
        weights_file(tmp_path / "empty")


def test_freezing_trains_the_classifier_alone_and_keeps_batch_norm_statistics():
    torch.manual_seed(0)
    net = create_model("resnet20", num_classes=3)
    trainable = freeze_features(net)
    assert trainable == 64 * 3 + 3
    assert [n for n, p in net.named_parameters() if p.requires_grad] == ["head.fc.weight", "head.fc.bias"]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net.train()
    loss = nn.functional.cross_entropy(net(torch.rand(8, 1, 32, 32)), torch.randint(0, 3, (8,)))
    loss.backward()
    opt.step()
    after = net.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["head.fc.bias", "head.fc.weight"]  # running means and variances included
    assert net.training and not net.stem.bn1.training  # frozen batch norm stays in evaluation mode


def test_fit_with_frozen_features_leaves_them_exactly_as_loaded(lenet_src, tmp_path):
    cfg = TrainConfig(
        model="lenet5", data="digits", init_from=str(lenet_src), freeze="features", epochs=1, subset=64,
        batch_size=32, out=str(tmp_path / "frozen"), tensorboard=False, progress=False,
    )  # fmt: skip
    result = fit(cfg)
    trained, meta = load_weights(result["weights"])
    source, _ = load_weights(lenet_src)
    assert all(torch.equal(trained[k], source[k]) for k in source if not k.startswith("head.fc3."))
    assert not torch.equal(trained["head.fc3.weight"], source["head.fc3.weight"])
    assert meta["init_from"] == str(lenet_src) and meta["freeze"] == "features"
    full = fit(cfg.replace(freeze="none", out=str(tmp_path / "full")))
    tuned, _ = load_weights(full["weights"])
    assert not torch.equal(tuned["features.conv1.weight"], source["features.conv1.weight"])


def test_finetune_command(lenet_src, tmp_path, capsys):
    out = tmp_path / "ft"
    argv = ["finetune", "--from", str(lenet_src), "--data", "digits", "--subset", "64", "--epochs", "1",
            "--freeze", "features", "--out", str(out), "--no-tensorboard", "--json"]  # fmt: skip
    code = main(argv)
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and r["model"] == "lenet5" and r["data"] == "digits" and 0 <= r["test_accuracy"] <= 1
    _, meta = load_weights(out / "model.safetensors")
    assert meta["freeze"] == "features" and meta["dataset"] == "digits"
    # a run folder works as the source too, and --model must agree with it
    code = main(
        [
            "finetune",
            "--from",
            str(out),
            "--model",
            "resnet20",
            "--data",
            "digits",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 1 and "holds weights for model 'lenet5', not 'resnet20'" in capsys.readouterr().err


def test_finetune_needs_a_source_and_rebuilds_model_options(tmp_path, capsys):
    assert main(["finetune", "--data", "digits"]) == 1
    assert "--from is required" in capsys.readouterr().err
    torch.manual_seed(0)  # a source built with options (batch norm) that shape its parameters
    src = _save(create_model("deep-convnet", norm="batch"), tmp_path / "bn.safetensors", "deep-convnet",
                model_kwargs={"norm": "batch"})  # fmt: skip
    code = main(["finetune", "--from", str(src), "--data", "digits", "--subset", "32", "--epochs", "1",
                 "--out", str(tmp_path / "bn"), "--no-tensorboard", "--json"])  # fmt: skip
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and r["model"] == "deep-convnet"
    trained, _ = load_weights(tmp_path / "bn" / "model.safetensors")
    assert "norm1.running_mean" in trained


def test_train_accepts_init_from_and_checks_freeze(lenet_src, tmp_path, capsys):
    with pytest.raises(ConfigError, match="--freeze"):
        TrainConfig(freeze="everything").resolved()
    code = main(["train", "--model", "lenet5", "--data", "digits", "--init-from", str(lenet_src), "--subset", "32",
                 "--epochs", "1", "--out", str(tmp_path / "t"), "--no-tensorboard", "--json"])  # fmt: skip
    assert code == 0 and json.loads(capsys.readouterr().out.strip().splitlines()[-1])["model"] == "lenet5"
