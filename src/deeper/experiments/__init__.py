"""The claims of the notes as runnable experiments: a figure and a verdict for each.

>>> from deeper.experiments import list_experiments, run_experiment
>>> [e.name for e in list_experiments()][:2]
['conv3x3-vs-5x5', 'depth-fewer-params']
>>> doc = run_experiment("conv3x3-vs-5x5", "quick", results="/tmp/experiments")
>>> doc["verdict"], doc["because"]

- :mod:`~deeper.experiments.base`: :class:`Experiment` (claim, sources in the notes, ``quick`` and
  ``full`` profiles, ``run``), :class:`Outcome`, the registry;
- :mod:`~deeper.experiments.stats`: the tests that decide a verdict (paired t-test over seeds,
  McNemar on paired predictions, Spearman trends, Mann-Whitney on timings) and how parts combine;
- :mod:`~deeper.experiments.results`: running one and its ``result.json``;
- :mod:`~deeper.experiments.report`: every finished experiment as one HTML and Markdown report;
- :mod:`~deeper.experiments.probe`, :mod:`~deeper.experiments.figures`: short training runs and plots;
- :mod:`deeper.experiments.claims`: the experiments, one module per claim or family.

Nothing in the package imports this one but the command line (``deeper experiment``).
"""

from deeper.experiments.base import (
    PROFILES,
    Context,
    Experiment,
    Outcome,
    Profile,
    Source,
    get_experiment,
    list_experiments,
)
from deeper.experiments.results import default_results_dir, finished, load_result, run_experiment
from deeper.experiments.stats import VERDICTS

__all__ = [
    "PROFILES",
    "VERDICTS",
    "Context",
    "Experiment",
    "Outcome",
    "Profile",
    "Source",
    "default_results_dir",
    "finished",
    "get_experiment",
    "list_experiments",
    "load_result",
    "run_experiment",
]
