"""One validation layer: the documented range of every number a user gives, and plain-data YAML.

Every numeric command-line option (and every numeric training option, however it
arrives: flag, ``config.yaml``, Python) has a range in :data:`RANGES`; the CLI
checks values against it while parsing (``--help`` shows it) and
:meth:`deeper.train.TrainConfig.check` against the same table.  Infinities, NaN,
absurd magnitudes and the wrong type end in one :class:`~deeper.errors.ConfigError`
line naming the option.

Text that should be data (``--model-arg``, ``--task-arg``, ``cv --grid``,
``config.yaml``) goes through :func:`load_yaml`: YAML's safe loader, errors as one
line, and only plain data (mappings, lists, strings, numbers, booleans, null).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from deeper.errors import ConfigError

BIG = 10**9  # counts beyond this are typos (or attacks), never a plan


@dataclass(frozen=True)
class Range:
    """Numbers of ``kind`` in [low, high] (``open_low``/``open_high``: the end itself excluded)."""

    kind: type  # int or float
    low: float
    high: float
    open_low: bool = False
    open_high: bool = False

    def describe(self) -> str:
        left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
        return f"{'an integer' if self.kind is int else 'a number'} in {left}{_fmt(self.low)}, {_fmt(self.high)}{right}"

    def contains(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return above and below

    def check(self, name: str, value):
        """``value`` (an int is accepted for a float) if in range; else a ConfigError naming ``name``."""
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not self.contains(value):
            raise ConfigError(f"{name} must be {self.describe()}, got {value!r}")
        return value

    def parse(self, text: str):
        """``text`` as this range's kind (for argparse); a ValueError with a short reason when it is not."""
        try:
            value = int(text, 10) if self.kind is int else float(text)
        except ValueError:
            raise ValueError(f"must be {self.describe()}, got {text!r}") from None
        if not self.contains(value):
            raise ValueError(f"must be {self.describe()}, got {text!r}")
        return value


def _fmt(x: float) -> str:
    return "1e9" if x == BIG else f"{x:g}" if isinstance(x, float) else str(x)


def count(low: int = 1, high: int = BIG) -> Range:
    return Range(int, low, high)


def positive(high: float = 1e6) -> Range:
    return Range(float, 0.0, high, open_low=True)


def nonnegative(high: float = 1e6) -> Range:
    return Range(float, 0.0, high)


def fraction(*, open_high: bool = True) -> Range:
    return Range(float, 0.0, 1.0, open_high=open_high)


SEED = Range(int, 0, 2**32 - 1)

#: the range of every numeric option, by its name (argparse ``dest``, the flat training option)
RANGES: dict[str, Range] = {
    # training (deeper train / cv / finetune, TrainConfig)
    "epochs": count(1, 100_000),
    "batch_size": count(1, 1_000_000),
    "eval_batch_size": count(1, 1_000_000),
    "lr": positive(1e6),
    "weight_decay": nonnegative(10.0),
    "label_smoothing": fraction(),
    "warmup": nonnegative(100_000.0),
    "clip_grad": positive(1e6),
    "dropout": fraction(),
    "mixup": nonnegative(1000.0),
    "cutmix": nonnegative(1000.0),
    "input_noise": nonnegative(100.0),
    "weight_noise": nonnegative(100.0),
    "early_stop": count(1, 100_000),
    "ema": fraction(),
    "ensemble": count(1, 1000),
    "boost_rate": positive(100.0),
    "subset": count(1, BIG),
    "val_size": nonnegative(float(BIG)),  # a fraction in (0, 1) or a count
    "seed": SEED,
    "max_steps": count(1, BIG),
    "checkpoint_every": count(1, BIG),
    "nproc": count(1, 1024),
    "max_restarts": count(0, 1000),
    "folds": count(2, 1000),
    "fold": count(0, 999),
    # evaluation, inference and galleries
    "top": count(1, 1000),
    "beam": count(1, 64),  # beam width of a captioning model's search
    "max": count(1, 10_000),
    "columns": count(1, 100),
    "images": count(1, 1000),
    "copies": count(1, 100),
    "n": count(1, 32),
    "num_classes": count(1, 100_000),
    "start": count(0, BIG),  # index of the first item drawn
    "eval": count(1, 1_000_000),  # items scored
    # tools
    "calib_batches": count(1, 10_000),
    "qat_steps": count(0, 1_000_000),
    "group_size": count(1, 65_536),
    "repeats": count(1, 1000),
    "finetune_steps": count(0, 1_000_000),
    "opset": count(7, 30),
    "temperature": positive(1000.0),
    "alpha": fraction(open_high=False),
    "steps": count(1, 100_000),
    "train_steps": count(1, 1_000_000),
    # reinforcement learning
    "episodes": count(1, 100_000),
    "epsilon": fraction(open_high=False),
    "gif_frames": count(1, 100_000),
    # image to image (deeper stylize)
    "size": count(16, 2048),  # longer side of a stylised image, pixels
    "style_weight": nonnegative(1e9),
    # image generation (deeper generate)
    "samples": count(1, 10_000),  # images generated
    "label": count(0, 99_999),  # class of a class-conditional generator
    "guidance": nonnegative(100.0),  # classifier-free guidance scale
    # deeper serve
    "port": count(0, 65_535),  # 0: any free port
    "threads": count(1, 256),
}


def check_option(name: str, value):
    """``value`` checked against :data:`RANGES` (``None`` passes: unset); the error names ``--name``."""
    if value is None or name not in RANGES:
        return value
    return RANGES[name].check(f"--{name.replace('_', '-')}", value)


# ---------------------------------------------------------------------------------------- plain data

PLAIN = (dict, list, str, int, float, bool, type(None))


#: plain data nests no deeper and holds no more items than this (recursive or "billion laughs" YAML is refused)
MAX_DEPTH, MAX_ITEMS = 32, 100_000


def plain_data(value, where: str):
    """``value`` if it is plain data throughout (what JSON could hold, of a sane size); else a ConfigError
    naming ``where``."""
    budget = [MAX_ITEMS]

    def walk(v, at: str, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise ConfigError(f"{where}: more than {MAX_ITEMS:,} items; refusing it")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{at}: nested more than {MAX_DEPTH} levels deep (a recursive document?)")
        if isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str | int | float | bool):
                    raise ConfigError(f"{at}: keys must be plain names, got {type(k).__name__}")
                walk(x, f"{at}.{k}", depth + 1)
        elif isinstance(v, list | tuple):
            for i, x in enumerate(v):
                walk(x, f"{at}[{i}]", depth + 1)
        elif not isinstance(v, PLAIN):
            raise ConfigError(f"{at}: expected plain data, got {type(v).__name__}")

    walk(value, where, 0)
    return value


def load_yaml(text: str, where: str):
    """``text`` read as YAML data (the safe loader; tags such as ``!!python`` are refused) in one-line errors."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: not readable as YAML data{at}: {problem}") from None
    return plain_data(value, where)
