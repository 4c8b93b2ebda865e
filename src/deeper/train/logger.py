"""Run logs: the resolved config as YAML, metrics as CSV and TensorBoard, curves as PNG."""

from __future__ import annotations

import csv
import io
import os
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

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
