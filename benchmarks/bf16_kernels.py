"""Is bfloat16 faster than float32 on this CPU at all?  Single kernels, no training loop.

``benchmarks/amp_training.py`` finds bf16 autocast training slower than float32
here.  This script asks the question below the engine: the time of one 3x3
convolution (channels-last, batch 128, forward only) and of one square matrix
product, in float32 and in bfloat16 (weights and inputs already bf16, so no
casts are timed), and under autocast (which casts).  It also lists the CPU's
bf16 flags (``ONEDNN_VERBOSE=1`` shows which oneDNN kernels run: on the 2-core
reference machine, ``brg_conv_fwd:avx512_core_bf16``).  Where bf16 is no faster
even here, no training recipe can make bf16 autocast 1.5x faster than float32
on this machine.

    python benchmarks/bf16_kernels.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _common import print_table, save  # noqa: E402

from deeper.accel.quantize import latency  # noqa: E402

CONVS = ((64, 14), (256, 7), (128, 28))  # (channels in = out, height = width)


def ms(fn, x: torch.Tensor, repeats: int) -> float:
    """Median milliseconds of ``fn(x)``, after warm-up calls (oneDNN builds its kernel, reorders weights)."""
    return latency(fn, x, repeats=repeats) * 1e3


def cpu_isa() -> str:
    """The CPU's bf16/fp16 and AMX flags from /proc/cpuinfo."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    have = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16") if f" {f}" in flags]
    return ", ".join(have) or "no bf16 instructions"


@torch.no_grad()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=30, help="timed calls per kernel; the median is kept [30]")
    p.add_argument("--output")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    rows = []
    for c, hw in CONVS:
        x = torch.randn(args.batch_size, c, hw, hw).contiguous(memory_format=torch.channels_last)
        conv = torch.nn.Conv2d(c, c, 3, padding=1).to(memory_format=torch.channels_last)
        conv16 = torch.nn.Conv2d(c, c, 3, padding=1).bfloat16().to(memory_format=torch.channels_last)
        x16 = x.bfloat16()
        f32, b16 = ms(conv, x, args.repeats), ms(conv16, x16, args.repeats)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = ms(conv, x, args.repeats)
        rows.append({"kernel": f"conv3x3 {c}->{c} on {hw}x{hw}, batch {args.batch_size}", "fp32 ms": f32, "bf16 ms": b16, "autocast ms": auto})  # fmt: skip
    m = torch.randn(1024, 1024)
    m16 = m.bfloat16()
    square = lambda t: t @ t  # noqa: E731
    f32, b16 = ms(square, m, args.repeats), ms(square, m16, args.repeats)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = ms(square, m, args.repeats)
    rows.append({"kernel": "matmul 1024x1024", "fp32 ms": f32, "bf16 ms": b16, "autocast ms": auto})
    for r in rows:
        r["bf16 speed-up"] = f"{r['fp32 ms'] / r['bf16 ms']:.2f}x"
        r["autocast speed-up"] = f"{r['fp32 ms'] / r['autocast ms']:.2f}x"
        for k in ("fp32 ms", "bf16 ms", "autocast ms"):
            r[k] = f"{r[k]:.2f}"
    print(f"CPU flags: {cpu_isa()}")
    print_table(rows)
    save(
        "bf16_kernels",
        {"cpu_flags": cpu_isa(), "threads": torch.get_num_threads(), "rows": rows},
        args.output,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
