"""Fewer bits (section 8.3.3): inference accuracy per float precision, and int8 / QAT / int4 / 1-bit.

Table 1: test accuracy of the same trained weights evaluated in float64, float32,
float16 and bfloat16 (weights and inputs cast; the notes' claim that 16 bits
suffice).  Table 2: each quantization method of ``deeper quantize`` with its
accuracy, size on disk and CPU latency at batch 1000 against deeper's fastest
float32 path (NCHW or channels-last, timed in the same run).

    python benchmarks/fewer_bits.py --weights runs/fast/model.safetensors --data-dir ../shared/datasets
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from deeper.accel.quantize import METHODS, quantize_weights  # noqa: E402
from deeper.inference import DTYPES, evaluate_weights  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="float32 DeepConvNet weights trained on --data")
    p.add_argument("--data", default="mnist")
    p.add_argument("--data-dir")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--qat-steps", type=int, default=300)
    p.add_argument("--binary-epochs", type=int, default=None, help="[the fast recipe's 6]")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--output")
    args = p.parse_args(argv)

    precision = []
    for dtype in DTYPES:
        r = evaluate_weights(args.weights, args.data, dtype=dtype, device="cpu", data_dir=args.data_dir)
        precision.append({"dtype": dtype, "test_accuracy": r["test_accuracy"], "seconds": r["seconds"]})
        print(f"{dtype:9s} accuracy {r['test_accuracy']:.4f}", file=sys.stderr, flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in args.methods.split(","):
            r = quantize_weights(
                args.weights, args.data, m, Path(tmp) / f"{m}.safetensors", data_dir=args.data_dir,
                qat_steps=args.qat_steps, binary_epochs=args.binary_epochs, repeats=args.repeats,
            )  # fmt: skip
            r.pop("output")
            rows.append(r)
            print(f"{m}: {r['test_accuracy']:.4f} speedup {r['speedup']:.2f}x", file=sys.stderr, flush=True)
    print(f"\n{'dtype':9s} {'test acc':>8s}")
    for r in precision:
        print(f"{r['dtype']:9s} {r['test_accuracy']:8.4f}")
    print(
        f"\n{'method':7s} {'acc':>7s} {'float':>7s} {'drop pt':>7s} {'bytes':>9s} {'float B':>9s} {'ms/1000':>8s} {'f32 ms':>7s} {'speedup':>7s}"
    )
    for r in rows:
        print(f"{r['method']:7s} {r['test_accuracy']:7.4f} {r['float_accuracy']:7.4f} {r['accuracy_drop']:7.2f} "
              f"{r['size_bytes']:9,d} {r['float_size_bytes']:9,d} {r['latency_ms']:8.1f} {r['float_latency_ms']:7.1f} "
              f"{r['speedup']:6.2f}x")  # fmt: skip
    print(
        save(
            "fewer_bits",
            {
                "weights": Path(args.weights).name,
                "data": args.data,
                "precision": precision,
                "quantized": rows,
            },
            args.output,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
