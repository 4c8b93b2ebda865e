"""Run logs: the resolved config as YAML, metrics as CSV and TensorBoard (per epoch and per step),
curves as PNG, and the console's lines as ``console.log``."""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from deeper.fileio import write_text_atomic


class RunLogger:
    """Writes into ``run_dir``: ``config.yaml``, ``metrics.csv``, ``tb/`` and ``curves.png``.

    The CSV is rewritten (atomically) from the full history after every epoch,
    so a resumed run's log never holds rows from the abandoned tail.
    """

    def __init__(
        self, run_dir: str | os.PathLike, *, tensorboard: bool = True, purge_step: int | None = None
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge_step)

    def write_config(self, config: dict) -> None:
        write_text_atomic(self.run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.tb is not None:
            self.tb.add_scalar(tag, value, step)

    def epoch(self, history: list[dict], step: int) -> None:
        row = history[-1]
        for key, value in row.items():
            if key not in ("epoch", "step") and isinstance(value, int | float):
                split, _, metric = key.partition("_")
                self.scalar(f"{metric or split}/{split}" if metric else key, value, step)
        self.write_csv(history)
        if self.tb is not None:
            self.tb.flush()

    def write_csv(self, history: list[dict]) -> None:
        fields: list[str] = []
        for row in history:
            fields += [k for k in row if k not in fields]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(history)
        write_text_atomic(self.run_dir / "metrics.csv", buf.getvalue())

    def steps(self, rows: list[dict], losses: list[str]) -> None:
        """Per-step rows (``step``, ``epoch``, the losses): appended to ``steps.csv``,
        each loss also to TensorBoard as ``<loss>/train_step``."""
        if not rows:
            return
        for row in rows:
            for name in losses:
                if isinstance(row.get(name), float) and math.isfinite(row[name]):
                    self.scalar(f"{name}/train_step", row[name], row["step"])
        path = self.run_dir / "steps.csv"
        header = _csv_header(path)
        fields = header or ["step", "epoch", *losses]
        with open(path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if not header:
                writer.writeheader()
            writer.writerows(rows)

    def trim_steps(self, step: int) -> None:
        """Keep only the ``steps.csv`` rows up to ``step`` (a resumed run goes on from there)."""
        path = self.run_dir / "steps.csv"
        if not path.is_file():
            return
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames or [], [r for r in reader if _int(r.get("step")) <= step]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(path, buf.getvalue())

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _csv_header(path: Path) -> list[str] | None:
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f), None)


def _int(text) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return 2**63  # an unreadable row is dropped


class ConsoleLog:
    """A run folder's ``console.log``: every notice and epoch line the run prints, time-stamped.

    Lines said before :meth:`open` (the run folder may not exist yet, and a run refused
    before it wrote anything must leave no folder) wait in memory; :meth:`open` writes
    them and appends the rest as they come (a resumed run continues the same file).
    """

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.file = None
        self.muted = 0

    def hear(self, line: str) -> None:
        """A line as printed (``deeper: ...``); ignored while :meth:`quiet`."""
        if self.muted:
            return
        stamped = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n"
        if self.file is None:
            self.pending.append(stamped)
            return
        with contextlib.suppress(OSError):  # a full disk: the log is lost, not the run (checkpoints say why)
            self.file.write(stamped)
            self.file.flush()

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Ignore what is heard inside (a line already recorded, printed through :func:`notice`)."""
        self.muted += 1
        try:
            yield
        finally:
            self.muted -= 1

    def open(self, run_dir: str | os.PathLike) -> None:
        self.file = open(Path(run_dir) / "console.log", "a", encoding="utf-8")  # noqa: SIM115 (closed by close)
        lines, self.pending = self.pending, []
        with contextlib.suppress(OSError):  # a full disk: the log is lost, not the run
            self.file.writelines(lines)
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()
            self.file = None


def append_console(run_dir: str | os.PathLike, line: str) -> None:
    """One more line at the end of a finished run's ``console.log`` (the command's closing line)."""
    path = Path(run_dir) / "console.log"
    if path.is_file():
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
