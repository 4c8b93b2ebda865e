"""``benchmarks/segmentation.py``: its configurations are valid segment runs, and a smoke run (slow)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from deeper.models import create_model, get_model_entry
from deeper.train import TrainConfig
from tests.helpers import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("segmentation")


def test_every_configuration_is_a_valid_segment_run_on_5000_scenes(bench):
    args = SimpleNamespace(
        subset=None, epochs=None, source="", eval_scenes=None, device="cpu", amp="off", data_dir=None
    )
    for name, (model, kwargs, _) in bench.CONFIGS.items():
        options = bench.train_config(name, args)
        cfg = TrainConfig(**options).resolved()
        assert cfg.task == "segment" and cfg.data == "scenes-seg" and cfg.sampling.subset == 5000
        assert get_model_entry(model).family == "segment"
        create_model(model, num_classes=11, in_chans=1, **kwargs)  # the options exist
    assert bench.CONFIGS["fcn8s-random-init"][1] == {"init": "random"}
    assert bench.CONFIGS["fcn8s-random-init"][2] == bench.CONFIGS["fcn8s"][2]  # the same budget
    assert set(bench.TARGETS) <= set(bench.CONFIGS)


@pytest.mark.slow
def test_a_smoke_run_trains_every_configuration_and_writes_the_table(bench, tmp_path, capsys):
    output = tmp_path / "segmentation.json"
    code = bench.main([
        "--source", "digits", "--subset", "32", "--epochs", "1", "--eval-scenes", "16",
        "--only", "fcn32s,fcn8s,unet", "--out", str(tmp_path / "runs"), "--output", str(output),
        "--figures", str(tmp_path / "fig"),
    ])  # fmt: skip
    assert code == 0
    result = json.loads(output.read_text())
    assert [r["config"] for r in result["results"]] == ["fcn32s", "fcn8s", "unet"]
    for r in result["results"]:
        assert 0 <= r["test_miou"] <= 1 and r["macs"] > 1e7 and r["inference_img_per_s"] > 0
        assert r["within_time_limit"] and r["options"]["subset"] == 32
    assert (tmp_path / "fig" / "segment_fcn.png").is_file()
    assert "| fcn8s |" in capsys.readouterr().out
