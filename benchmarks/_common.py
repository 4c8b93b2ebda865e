"""Helpers shared by the speed benchmarks: the machine line and the JSON result file."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from deeper.fileio import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads{gpu}"


def save(name: str, result: dict, output: str | None = None) -> Path:
    path = Path(output) if output else RESULTS / f"{name}.json"
    result = {"benchmark": name, "machine": machine(), "torch": torch.__version__, **result}
    write_text_atomic(path, json.dumps(result, indent=2) + "\n")
    return path


def markdown_table(rows: list[dict]) -> str:
    """``rows`` (dicts with the same keys) as a Markdown table, ready for the README."""
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def print_table(rows: list[dict]) -> None:
    print(f"machine: {machine()}, torch {torch.__version__}")
    print(markdown_table(rows), flush=True)


def write_result(path: str | Path, result: dict, *, echo_json: bool = False) -> Path:
    """Write ``result`` as JSON (atomically) to ``path``; with ``echo_json`` also print it as one line."""
    path = Path(path)
    write_text_atomic(path, json.dumps(result, indent=2) + "\n")
    if echo_json:
        print(json.dumps(result))
    return path


def merge_runs(path: str | Path, fresh: dict, order: list[str]) -> dict:
    """``fresh`` (a result with ``rows`` and ``results`` of some configurations, keyed ``config``) merged into
    the previous file at ``path``: the other configurations' rows and results stay, every row names the CPU it
    was measured on (``CPU``), ``machines`` lists each machine line, ``machine`` joins them, and rows and
    results follow ``order`` (the benchmark's configurations); keys only the previous file has are kept."""
    path = Path(path)
    return merge_into(json.loads(path.read_text()) if path.is_file() else {}, fresh, order)


def merge_into(previous: dict, fresh: dict, order: list[str]) -> dict:
    """:func:`merge_runs` with the previous result given."""
    done = {r["config"] for r in fresh["rows"]} | set(fresh.get("results", {}))
    before = previous.get("machines") or ([previous["machine"]] if previous.get("machine") else [])
    old_cpu = before[0].split(",")[0] if len(before) == 1 else ""
    rows = {
        r["config"]: r | {"CPU": r.get("CPU") or old_cpu}
        for r in previous.get("rows", [])
        if r["config"] not in done
    }
    kept = bool(rows)
    rows |= {r["config"]: r | {"CPU": cpu_name()} for r in fresh["rows"]}
    results = {k: v for k, v in previous.get("results", {}).items() if k not in done} | fresh.get(
        "results", {}
    )
    rank = {name: i for i, name in enumerate(order)}
    machines = list(dict.fromkeys([*(before if kept else []), machine()]))
    return (
        previous
        | fresh
        | {  # what only the previous file has (another part of the benchmark) stays
            "machine": "; ".join(machines),
            "machines": machines,
            "rows": sorted(rows.values(), key=lambda r: rank.get(r["config"], len(rank))),
            "results": dict(sorted(results.items(), key=lambda kv: rank.get(kv[0], len(rank)))),
        }
    )
