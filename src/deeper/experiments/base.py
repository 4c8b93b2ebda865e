"""What an experiment is: a claim of the notes, where the notes make it, two profiles, and a run.

An :class:`Experiment` is registered by name (:func:`register`).  Its ``run``
takes a :class:`Context` (the profile's parameters, the device, the folder to
write figures into, the data) and returns an :class:`Outcome`: the verdict, the
sentence that justifies it, the statistical tests that decided it, the headline
numbers, the figures and the raw measurements.  :func:`deeper.experiments.run`
writes all of it as ``result.json`` beside the figures.

Profiles: ``quick`` fits a small CPU in seconds to minutes (the CI smoke test
runs every one; it uses ``digits``, which is always offline, or a few hundred
images); ``full`` is what the published figures use.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deeper.errors import ConfigError, unknown_name

PROFILES = ("quick", "full")

#: the five source notes (``/work/shared/seeds`` in the project's workspace; see docs/experiments)
NOTES = {
    "000": "000: chapter 8 summary (going deeper, speed, applications)",
    "001": "001: chapter 8 notes (deeper, faster, fewer bits)",
    "002": "002: chapter 8 slides (8.1-8.5)",
    "003": "003: chapter 8 walkthrough (8.1-8.4)",
    "004": "004: Deep Learning Basics course (optimization, regularization, CNNs)",
}


@dataclass(frozen=True)
class Source:
    """Where the notes make a claim: a note (``"003"``) and its section, as the note titles it."""

    note: str
    section: str

    def __post_init__(self):
        if self.note not in NOTES:
            raise ValueError(f"unknown note {self.note!r} (known: {', '.join(NOTES)})")

    def __str__(self) -> str:
        return f"note {self.note}, {self.section}"


@dataclass(frozen=True)
class Profile:
    """A named set of parameters of an experiment, with a line saying what it runs."""

    description: str
    params: dict = field(default_factory=dict)
    data: tuple[str, ...] = ()  # datasets it reads (besides digits)


@dataclass
class Outcome:
    """What an experiment found."""

    verdict: str
    because: str  # one or two sentences: the numbers that decided it
    tests: list[dict]  # the statistical tests (deeper.experiments.stats), each with its own verdict
    numbers: dict = field(default_factory=dict)  # headline numbers (what the report's table shows)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (PNG file name, caption)
    data: dict = field(default_factory=dict)  # the raw measurements behind the numbers
    notes: list[str] = field(default_factory=list)  # caveats (e.g. CPU figures for a GPU claim)
    evidence: list[str] = field(default_factory=list)  # results files read (benchmarks/results/*.json)
    rule: str = ""  # how the tests were combined into the verdict


@dataclass
class Context:
    """What a run gets: the profile's parameters, the device, the output folder, the data."""

    experiment: Experiment
    profile: str
    params: dict
    out_dir: Path
    device: str = "cpu"
    data_dir: str | None = None
    log: Callable[[str], None] = print
    reuse: bool = False  # analyse the benchmark's committed results instead of measuring again
    _data: dict = field(default_factory=dict, repr=False)

    def figure(self, name: str) -> Path:
        """The path of figure ``name`` (a PNG in this run's folder)."""
        return self.out_dir / f"{name}.png"

    def dataset(self, name: str, split: str):
        """A dataset split in memory (loaded once per run)."""
        from deeper.data import load_dataset

        key = (name, split)
        if key not in self._data:
            self._data[key] = load_dataset(name, split, data_dir=self.data_dir)
        return self._data[key]

    def torch_device(self):
        from deeper.runtime import resolve_device

        return resolve_device(self.device)


@dataclass(frozen=True)
class Experiment:
    """A claim of the notes as something that runs: ``run(ctx) -> Outcome``."""

    name: str
    title: str  # a short heading
    claim: str  # the claim, in the notes' terms
    sources: tuple[Source, ...]
    method: str  # how it is measured and decided, in a few sentences
    profiles: dict[str, Profile]
    run: Callable[[Context], Outcome]
    benchmark: str | None = None  # the benchmark script it shares its logic or results with
    reusable: bool = (
        False  # run() can analyse that benchmark's committed results instead of measuring (--reuse)
    )
    gpu: bool = False  # a claim about GPUs: CPU figures are marked as such

    def __post_init__(self):
        missing = [p for p in PROFILES if p not in self.profiles]
        if missing:
            raise ValueError(f"experiment {self.name!r} has no {' or '.join(missing)} profile")
        if not self.sources:
            raise ValueError(f"experiment {self.name!r} names no source in the notes")
        if self.reusable and not self.benchmark:
            raise ValueError(f"experiment {self.name!r} is reusable but names no benchmark")


_REGISTRY: dict[str, Experiment] = {}

#: the order of the claims in the report: the notes' story (going deeper, speed, precision, then the course's
#: optimization and regularization); experiments not named here follow in the order they registered
ORDER = (
    "conv3x3-vs-5x5", "depth-fewer-params", "depth-less-data", "skip-connections", "conv1x1", "conv-time-share",
    "gpu-vs-cpu", "data-parallel", "fp16-inference", "fewer-bits", "robustness", "transfer", "accuracy-tricks",
    "gd-variants", "batch-size-sharpness", "optimizers", "regularization", "early-stopping", "bias-variance",
    "bagging-vs-boosting",
)  # fmt: skip


def register(experiment: Experiment) -> Experiment:
    if experiment.name in _REGISTRY:
        raise ValueError(f"experiment {experiment.name!r} is already registered")
    _REGISTRY[experiment.name] = experiment
    return experiment


def _load_all() -> None:
    """Import every claim module of the package (each registers its experiments)."""
    import importlib
    import pkgutil

    import deeper.experiments.claims as claims

    for info in pkgutil.iter_modules(claims.__path__):
        importlib.import_module(f"{claims.__name__}.{info.name}")


def list_experiments(pattern: str = "*") -> list[Experiment]:
    """The registered experiments matching ``pattern``, in the order of the notes' claims."""
    _load_all()
    rank = {name: i for i, name in enumerate(ORDER)}
    found = [e for e in _REGISTRY.values() if fnmatch.fnmatch(e.name, pattern)]
    return sorted(found, key=lambda e: rank.get(e.name, len(ORDER)))


def get_experiment(name: str) -> Experiment:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name("experiment", name, _REGISTRY) from None


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r} (choose from {', '.join(PROFILES)})")
    return profile
