"""Which CPU this is, and the training choices that win on its family.

The same network trains at very different speeds on x86 CPUs of the same
width: oneDNN's bfloat16 convolutions are fast on AMD's Zen 4 (``avx512_bf16``
in hardware) and slower than float32 on the Intel Xeons we measured, although
those report ``avx512_bf16`` too.  ``--amp auto`` (the ``fast`` recipe's
default) therefore resolves per CPU family, by the table in
:func:`cpu_choice`, each row backed by a measurement in ``benchmarks/results/``:

=====================================  ==========  ================================================
CPU family                             ``--amp``   measured (DeepConvNet, MNIST, 2 cores)
=====================================  ==========  ================================================
AMD with ``avx512_bf16`` (Zen 4 on)    ``bf16``    ``time_to_accuracy_amd.json``,
                                                   ``conv_ceiling.json``: bf16 autocast trains
                                                   faster than float32, channels-last
any other CPU                          ``off``     ``bf16_kernels.json``: bfloat16 convolutions
                                                   0.6-0.7x float32 on an Intel Xeon
=====================================  ==========  ================================================

Layout (channels-last for convolutional models on the CPU), batch (the
recipe's) and threads (torch's default: one per core) won on every CPU we
measured, so they do not vary.  The evaluation always runs in float32: the
choice changes the training arithmetic, never how a model is scored.  An
explicit ``--amp`` always wins.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CpuInfo:
    vendor: str  # "AuthenticAMD", "GenuineIntel", ... ("" when unknown)
    model: str  # the model name the CPU reports
    flags: frozenset[str]

    @property
    def family(self) -> str:
        """A short name of the family the choice table keys on."""
        if self.vendor == "AuthenticAMD":
            return "amd-bf16" if "avx512_bf16" in self.flags else "amd"
        if self.vendor == "GenuineIntel":
            return "intel"
        return "other"


def parse_cpuinfo(text: str) -> CpuInfo:
    """The first processor's vendor, model name and flags from ``/proc/cpuinfo``'s text."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor is enough
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return CpuInfo(
        vendor=fields.get("vendor_id", ""),
        model=fields.get("model name", ""),
        flags=frozenset(fields.get("flags", "").split()),
    )


@functools.cache
def cpu_info() -> CpuInfo:
    """This machine's CPU (Linux's ``/proc/cpuinfo``; elsewhere the platform's name and no flags)."""
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        return CpuInfo(vendor="", model=platform.processor(), flags=frozenset())


@dataclass(frozen=True)
class CpuChoice:
    amp: str  # what --amp auto becomes: "bf16" or "off"


def cpu_choice(info: CpuInfo) -> CpuChoice:
    """The training precision that wins on ``info``'s family (the module's table)."""
    if info.family == "amd-bf16":
        return CpuChoice(amp="bf16")
    return CpuChoice(amp="off")
