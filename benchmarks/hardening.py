"""Bad input, tried by class: how many probes end cleanly, and the memory the bombs cost.

A probe ends cleanly when the command exits non-zero with one line on stderr naming the problem (no
traceback) and leaves nothing behind in its output folder.  Classes: numbers without bounds (every
numeric option of every command, seven bad values each), text that should be data, files that lie,
pointers out of bounds, resource bombs (run in a child process whose peak memory is measured), and
two writers on one run folder.

    DEEPER_DATA=../shared/datasets .venv/bin/python benchmarks/hardening.py     # ~2 min
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, print_table, write_result  # noqa: E402

BAD_NUMBERS = ["inf", "-inf", "nan", "-1", "1e30", "123456789012345678901234", "abc"]


def clean(code: int, err: str, leftovers: list[Path]) -> bool:
    return code != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err and not leftovers


def run_main(argv: list[str], cwd: Path) -> tuple[int, str]:
    from deeper.cli import main

    err = io.StringIO()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        os.chdir(old)
    return code, err.getvalue()


def probe_numbers() -> list[bool]:
    from deeper.cli import build_parser

    results = []
    for name, parser in build_parser().subcommands.items():
        stack = [(name, parser)]
        while stack:
            cmd, p = stack.pop()
            for a in p._actions:
                if isinstance(a, argparse._SubParsersAction):
                    stack += [(f"{cmd} {k}", c) for k, c in a.choices.items()]
                elif hasattr(a, "range"):
                    for bad in BAD_NUMBERS:
                        err = io.StringIO()
                        with contextlib.redirect_stderr(err), contextlib.suppress(SystemExit):
                            p.parse_known_args([f"{a.option_strings[0]}={bad}"])
                            results.append(False)  # accepted: not clean
                            continue
                        results.append(clean(2, err.getvalue(), []))
    return results


def probe_text(tmp: Path) -> list[bool]:
    argvs = [
        ["train", "--model-arg", "width=[1, 2"],
        ["train", "--model-arg", "width=!!python/object/apply:os.system ['echo x']"],
        ["train", "--task-arg", "teacher=&a [*a]"],
        ["train", "--model-arg", "=3"],
        ["cv", "--grid", "lr=", "--data", "digits"],
        ["cv", "--grid", "speed=1,2", "--data", "digits"],
        ["train", "--model-arg", "width=-1", "--data", "digits"],
        ["train", "--model-arg", "width=1e12", "--data", "digits"],
    ]
    documents = ["", "[1, 2]\n", "optim: {lr: abc}\n", "optim: [1]\n", "a: [1\n", "seed: !!python/name:os.system\n",
                 "seed: 1e999\n", "epochs: 2024-01-01\n", "model: {a: 1}\n", "colour: red\n"]  # fmt: skip
    out = []
    for argv in argvs:
        work = Path(tempfile.mkdtemp(dir=tmp))
        code, err = run_main(argv, work)
        out.append(clean(code, err, list(work.iterdir())))
        if not out[-1]:
            print("not clean:", argv, code, err[-300:])
    for doc in documents:
        work = Path(tempfile.mkdtemp(dir=tmp))
        (work / "config.yaml").write_text(doc)
        code, err = run_main(["train", "--resume", str(work)], work)
        out.append(clean(code, err, [p for p in work.iterdir() if p.name != "config.yaml"]))
        if not out[-1]:
            print("not clean:", repr(doc), code, err[-300:])
    return out


def _weights(path: Path, meta: dict, bad: float | None = None) -> Path:
    from deeper.models import create_model, save_weights

    state = create_model("deep-convnet").state_dict()
    if bad is not None:
        state["conv1.weight"] = state["conv1.weight"].clone()
        state["conv1.weight"][0, 0, 0, 0] = bad
    save_weights(state, path, meta)
    return path


def probe_files(tmp: Path) -> list[bool]:
    import numpy as np
    from PIL import Image

    img = tmp / "digit.png"
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)).save(img)
    base = {"model": "deep-convnet", "num_classes": 10}
    weights = [
        _weights(tmp / "nan.safetensors", base, float("nan")),
        _weights(tmp / "inf.safetensors", base, float("inf")),
        _weights(tmp / "classes.safetensors", {**base, "num_classes": 2_000_000_000}),
        _weights(tmp / "chans.safetensors", {**base, "in_chans": "three"}),
        _weights(tmp / "kwargs.safetensors", {**base, "model_kwargs": "{width: "}),
        _weights(tmp / "width.safetensors", {**base, "model_kwargs": '{"width": 1e9}'}),
    ]
    (tmp / "pickle.safetensors").write_bytes(b"\x80\x04K\x01.")
    (tmp / "empty.safetensors").write_bytes(b"")
    weights += [tmp / "pickle.safetensors", tmp / "empty.safetensors"]
    (tmp / "not-an-image.png").write_text("hello")
    out = []
    for w in weights:
        for argv in (["predict", "--weights", str(w), str(img)], ["eval", "--weights", str(w), "--data", "digits"],
                     ["export", "--weights", str(w), "--data", "digits", "-o", str(tmp / "x" / "m.onnx")],
                     ["quantize", "--weights", str(w), "--data", "digits", "--method", "int4",
                      "-o", str(tmp / "x" / "q.safetensors")]):  # fmt: skip
            code, err = run_main(argv, tmp)
            out.append(clean(code, err, list((tmp / "x").glob("*")) if (tmp / "x").exists() else []))
    good = _weights(tmp / "good.safetensors", base)
    for image in (tmp / "not-an-image.png", tmp, tmp / "missing.png"):
        code, err = run_main(["predict", "--weights", str(good), str(image)], tmp)
        out.append(clean(code, err, []))
    return out


def probe_pointers(tmp: Path) -> list[bool]:
    import torch

    from deeper.train.checkpoint import save_checkpoint

    out = []
    for pointer in ("../../etc", "/etc", "step-00000001/../../x", "step-1", "", "step-00000009", "\x00\xff"):
        run = Path(tempfile.mkdtemp(dir=tmp))
        (run / "config.yaml").write_text("data: digits\n")
        save_checkpoint(run, 1, {"net.w": torch.zeros(1)}, {})
        (run / "checkpoints" / "latest").write_text(pointer)
        code, err = run_main(["train", "--resume", str(run)], run)
        out.append(clean(code, err, []))
    return out


BOMB = """
import sys
from deeper.cli import main
code = main(sys.argv[1:])
status = open("/proc/self/status").read()  # VmHWM: this process's own peak (ru_maxrss survives exec)
print(code, next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmHWM")))
"""


def probe_bombs(tmp: Path) -> list[dict]:
    sparse = tmp / "sparse" / "mnist"
    sparse.mkdir(parents=True)
    with open(sparse / "t10k-images-idx3-ubyte", "wb") as fh:
        fh.truncate(40 * 10**9)
    bomb = tmp / "bomb" / "mnist"
    bomb.mkdir(parents=True)
    with gzip.open(bomb / "t10k-images-idx3-ubyte.gz", "wb", compresslevel=9) as fh:
        for _ in range(128):
            fh.write(bytes(1 << 24))  # 2 GiB of zeros
    png = b"\x89PNG\r\n\x1a\n"
    for kind, data in ((b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)),
                       (b"IDAT", zlib.compress(bytes(100))), (b"IEND", b"")):  # fmt: skip
        png += struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    (tmp / "big.png").write_bytes(png)
    weights = _weights(tmp / "w.safetensors", {"model": "deep-convnet", "num_classes": 10})
    cases = {
        "sparse 40 GB IDX file": ["eval", "--weights", str(weights), "--data", "mnist", "--data-dir", str(tmp / "sparse")],
        "gzip inflating to 2 GiB (2 MB file)": ["eval", "--weights", str(weights), "--data", "mnist",
                                                "--data-dir", str(tmp / "bomb")],
        "20000x20000 PNG": ["predict", "--weights", str(weights), str(tmp / "big.png")],
        "summary --input 64x4096x4097": ["summary", "lenet5", "--input", "64x4096x4097"],
        "model with width=5000": ["summary", "deep-convnet", "--model-arg", "width=5000"],
        "(for scale: a normal summary)": ["summary", "deep-convnet"],
    }  # fmt: skip
    rows = []
    for name, argv in cases.items():
        p = subprocess.run([sys.executable, "-c", BOMB, *argv], capture_output=True, text=True, timeout=600)
        code, peak = (int(x) for x in p.stdout.strip().splitlines()[-1].split())
        ok = code == 0 if name.startswith("(") else clean(code, p.stderr, [])
        rows.append({"case": name, "clean": ok, "peak_mb": round(peak / 1024, 1),
                     "message": (p.stderr.strip().splitlines() or [""])[-1][:160]})  # fmt: skip
    return rows


def probe_writers(tmp: Path) -> bool:
    out = tmp / "run"
    cmd = [sys.executable, "-m", "deeper", "train", "--data", "digits", "--epochs", "2", "--subset", "256",
           "--no-tensorboard", "--out", str(out)]  # fmt: skip
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    ends = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(c for c, _ in ends)
    loser = next((e for c, e in ends if c == 1), "")
    return codes == [0, 1] and clean(1, loser, []) and "being written" in loser


def main() -> int:
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        classes = {
            "numbers without bounds": probe_numbers(),
            "text that should be data": probe_text(tmp),
            "files that lie": probe_files(tmp),
            "pointers out of bounds": probe_pointers(tmp),
        }
        bombs = probe_bombs(tmp)
        writers = probe_writers(tmp)
    rows = [{"class": k, "probes": len(v), "clean": sum(v)} for k, v in classes.items()]
    rows.append({"class": "resource bombs", "probes": len(bombs), "clean": sum(b["clean"] for b in bombs)})
    rows.append({"class": "two writers, one run", "probes": 1, "clean": int(writers)})
    print_table(rows)
    print_table([{k: b[k] for k in ("case", "clean", "peak_mb")} for b in bombs])
    write_result(RESULTS / "hardening.json", {"benchmark": "hardening", "machine": machine(), "classes": rows,
                                              "bombs": bombs})  # fmt: skip
    return 0 if all(r["clean"] == r["probes"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
