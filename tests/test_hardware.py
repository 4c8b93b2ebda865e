"""The CPU family table behind ``--amp auto`` (deeper.hardware) and how a run resolves it."""

from __future__ import annotations

import pytest
import torch

from deeper import hardware
from deeper.hardware import CpuInfo, cpu_choice, parse_cpuinfo
from deeper.train.amp import amp_policy, resolve_auto
from deeper.train.config import TrainConfig

ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model name\t: AMD EPYC 9654 96-Core Processor
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_bf16 avx512_vnni

processor\t: 1
vendor_id\t: SomethingElse
model name\t: not the first processor
flags\t\t: fpu
"""
XEON_BF16 = """vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu avx avx2 avx512f avx512_bf16 avx512_fp16
"""
ZEN3 = """vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7763 64-Core Processor
flags\t\t: fpu avx avx2 fma
"""


def test_parse_reads_the_first_processor():
    info = parse_cpuinfo(ZEN4)
    assert info.vendor == "AuthenticAMD"
    assert info.model == "AMD EPYC 9654 96-Core Processor"
    assert "avx512_bf16" in info.flags and "fpu" in info.flags
    assert parse_cpuinfo("") == CpuInfo("", "", frozenset())


@pytest.mark.parametrize(
    "text, family, amp",
    [
        (ZEN4, "amd-bf16", "bf16"),  # measured faster in bf16: time_to_accuracy_amd.json
        (XEON_BF16, "intel", "off"),  # has the flag, but measured slower: bf16_kernels.json
        (ZEN3, "amd", "off"),  # no bfloat16 in hardware
        ("", "other", "off"),
    ],
)
def test_choice_per_family(text, family, amp):
    info = parse_cpuinfo(text)
    assert info.family == family
    choice = cpu_choice(info)
    assert choice.amp == amp


def test_auto_resolves_per_cpu_device_and_task(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_info", lambda: parse_cpuinfo(ZEN4))
    assert resolve_auto("auto", "cpu") == "bf16"
    assert resolve_auto("auto", "cpu", task_allows=False) == "off"  # tasks not measured in it
    assert resolve_auto("auto", "cuda") == "off"  # GPUs: an explicit choice
    assert resolve_auto("off", "cpu") == "off" and resolve_auto("bf16", "cpu") == "bf16"
    assert amp_policy("auto", "cpu").dtype == torch.bfloat16
    monkeypatch.setattr(hardware, "cpu_info", lambda: parse_cpuinfo(XEON_BF16))
    assert resolve_auto("auto", "cpu") == "off"
    assert not amp_policy("auto", "cpu").enabled and amp_policy("auto", "cpu").name == "off"


def test_recipes_set_auto_and_the_user_wins():
    assert TrainConfig().resolved().speed.amp == "auto"  # the default recipe: fast
    assert TrainConfig(recipe="book").resolved().speed.amp == "off"  # the book's, unchanged
    assert TrainConfig(amp="off").resolved().speed.amp == "off"
    from deeper.errors import ConfigError

    with pytest.raises(ConfigError, match="--amp must be off, auto"):
        TrainConfig(amp="fast").resolved()


def test_a_run_records_what_auto_became(monkeypatch, tmp_path):
    """A tiny classification run on a (pretended) Zen 4 trains in bf16 and says so in its result and
    config.yaml; the same run told --amp off stays float32."""
    import yaml

    from deeper.train import fit

    monkeypatch.setattr(hardware, "cpu_info", lambda: parse_cpuinfo(ZEN4))
    opts = dict(data="digits", subset=64, batch_size=16, epochs=1, val_size=0.2, device="cpu",
                tensorboard=False, progress=False)  # fmt: skip
    for amp, expect in (("auto", "bf16"), ("off", "off")):
        out = tmp_path / amp
        result = fit(TrainConfig(amp=amp, out=str(out), **opts))
        assert result["amp"] == expect
        recorded = yaml.safe_load((out / "config.yaml").read_text())
        assert recorded["resolved"]["amp"] == expect and recorded["speed"]["amp"] == amp
