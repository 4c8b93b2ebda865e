"""The statistical tests that decide a verdict, and the rules that turn them into one.

Every test returns a plain dict (it goes into the experiment's JSON as is) with
its name, what was compared, the numbers, the p-value(s), a confidence interval
where one exists, and its own ``verdict``:

- ``supported``: the measurement shows the claimed effect (the one-sided
  ``1 - alpha`` confidence bound lies on the claimed side of zero, or of the
  margin of a "no worse than" claim);
- ``not supported``: the measurement shows the opposite, or rules out an effect
  as large as the smallest one that would matter (``delta``);
- ``inconclusive``: neither (too few samples, or too much spread).

The thresholds are declared by each experiment before it measures (in its
profile), never tuned afterwards.  :func:`combine` turns the tests of a claim
with several parts into one verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)
CLAIMS = ("greater", "less", "noninferior")


def _check_claim(claim: str) -> None:
    if claim not in CLAIMS:
        raise ValueError(f"claim must be one of {CLAIMS}, got {claim!r}")


def _interval_verdict(lo: float, hi: float, claim: str, delta: float) -> str:
    """The verdict from the one-sided bounds ``lo``/``hi`` of an effect (``b - a``).

    ``greater``: the effect is positive (``lo > 0``); refuted when ``hi < delta``
    (an effect as large as ``delta`` is ruled out; ``delta = 0``: the opposite shown).
    ``less``: mirrored.  ``noninferior``: ``b`` is no worse than ``a`` by more
    than ``delta`` (``lo > -delta``); refuted when ``hi < -delta``.
    """
    if math.isnan(lo) or math.isnan(hi):
        return INCONCLUSIVE
    if claim == "greater":
        return SUPPORTED if lo > 0 else NOT_SUPPORTED if hi < delta else INCONCLUSIVE
    if claim == "less":
        return SUPPORTED if hi < 0 else NOT_SUPPORTED if lo > -delta else INCONCLUSIVE
    return SUPPORTED if lo > -delta else NOT_SUPPORTED if hi < -delta else INCONCLUSIVE


def paired(
    a: Sequence[float],
    b: Sequence[float],
    *,
    claim: str = "greater",
    delta: float = 0.0,
    alpha: float = 0.05,
    what: str = "",
    labels: tuple[str, str] = ("a", "b"),
) -> dict:
    """Paired comparison of ``b`` against ``a`` (same seeds, same data): a paired t-test on ``b - a``.

    ``claim``: ``greater`` (b > a), ``less`` (b < a) or ``noninferior`` (b no
    worse than a by more than ``delta``).  The bounds are the one-sided
    ``1 - alpha`` confidence bounds of the mean difference (together a
    ``1 - 2 alpha`` interval).  With six pairs or more the Wilcoxon signed-rank
    p-value is given beside it (no normality assumed).
    """
    from scipy import stats

    _check_claim(claim)
    if len(a) != len(b):
        raise ValueError(f"paired samples must have the same length, got {len(a)} and {len(b)}")
    d = [float(y) - float(x) for x, y in zip(a, b)]
    n = len(d)
    mean = sum(d) / n if n else float("nan")
    out = {
        "test": "paired t-test",
        "what": what,
        "labels": list(labels),
        "n": n,
        "mean_a": sum(map(float, a)) / n if n else None,
        "mean_b": sum(map(float, b)) / n if n else None,
        "mean_diff": mean,
        "claim": claim,
        "delta": delta,
        "alpha": alpha,
    }
    if n < 2:
        return {**out, "ci": [None, None], "p_greater": None, "p_less": None, "verdict": INCONCLUSIVE,
                "reason": "fewer than two pairs"}  # fmt: skip
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    se = sd / math.sqrt(n)
    if se == 0:  # every pair differs by the same amount: the interval is that amount
        lo = hi = mean
        t = math.copysign(math.inf, mean) if mean else 0.0
        p_greater = 0.0 if mean > 0 else 1.0
        p_less = 0.0 if mean < 0 else 1.0
    else:
        q = stats.t.ppf(1 - alpha, n - 1)
        lo, hi = mean - q * se, mean + q * se
        t = mean / se
        p_greater = float(stats.t.sf(t, n - 1))
        p_less = float(stats.t.cdf(t, n - 1))
    out.update({"sd_diff": sd, "t": t, "df": n - 1, "ci": [lo, hi], "p_greater": p_greater, "p_less": p_less})
    if n >= 6 and any(d):
        w = stats.wilcoxon(d, alternative="two-sided", zero_method="zsplit")
        out["wilcoxon_p_two_sided"] = float(w.pvalue)
    out["verdict"] = _interval_verdict(lo, hi, claim, delta)
    return out


def paired_predictions(
    correct_a: Sequence[bool],
    correct_b: Sequence[bool],
    *,
    claim: str = "noninferior",
    delta: float = 0.001,
    alpha: float = 0.05,
    what: str = "",
    labels: tuple[str, str] = ("a", "b"),
) -> dict:
    """Two classifiers scored on the same images: McNemar's exact test and a bound on the accuracy difference.

    ``correct_a``/``correct_b``: per image, whether each got it right.  The
    difference ``acc_b - acc_a`` gets a normal-approximation interval from the
    discordant pairs (Wald interval for paired proportions); its verdict follows
    ``claim`` and ``delta`` as in :func:`paired`.
    """
    from scipy import stats

    _check_claim(claim)
    if len(correct_a) != len(correct_b) or not correct_a:
        raise ValueError("both classifiers must be scored on the same, non-empty set of images")
    n = len(correct_a)
    only_a = sum(1 for x, y in zip(correct_a, correct_b) if x and not y)
    only_b = sum(1 for x, y in zip(correct_a, correct_b) if y and not x)
    acc_a, acc_b = sum(map(bool, correct_a)) / n, sum(map(bool, correct_b)) / n
    diff = acc_b - acc_a
    var = ((only_a + only_b) / n - diff**2) / n
    z = stats.norm.ppf(1 - alpha)
    half = z * math.sqrt(max(var, 0.0))
    lo, hi = diff - half, diff + half
    discordant = only_a + only_b
    p = float(stats.binomtest(only_b, discordant, 0.5).pvalue) if discordant else 1.0
    return {
        "test": "McNemar exact test (paired predictions)",
        "what": what,
        "labels": list(labels),
        "n": n,
        "accuracy_a": acc_a,
        "accuracy_b": acc_b,
        "mean_diff": diff,
        "only_a_right": only_a,
        "only_b_right": only_b,
        "p_two_sided": p,
        "ci": [lo, hi],
        "claim": claim,
        "delta": delta,
        "alpha": alpha,
        "verdict": _interval_verdict(lo, hi, claim, delta),
    }


def accuracies(
    acc_a: float,
    acc_b: float,
    n: int,
    *,
    claim: str = "noninferior",
    delta: float = 0.001,
    alpha: float = 0.05,
    what: str = "",
    labels: tuple[str, str] = ("a", "b"),
) -> dict:
    """Two accuracies on the same ``n`` test images when the per-image answers are not at hand.

    The interval of ``acc_b - acc_a`` treats the two as independent proportions
    (wider than the paired interval of :func:`paired_predictions`: conservative).
    """
    from scipy import stats

    _check_claim(claim)
    diff = acc_b - acc_a
    se = math.sqrt(max(acc_a * (1 - acc_a) + acc_b * (1 - acc_b), 0.0) / n)
    half = stats.norm.ppf(1 - alpha) * se
    return {
        "test": "two-proportion z interval (unpaired, conservative)",
        "what": what,
        "labels": list(labels),
        "n": n,
        "accuracy_a": acc_a,
        "accuracy_b": acc_b,
        "mean_diff": diff,
        "ci": [diff - half, diff + half],
        "claim": claim,
        "delta": delta,
        "alpha": alpha,
        "verdict": _interval_verdict(diff - half, diff + half, claim, delta),
    }


def threshold(what: str, value: float, limit: float, *, above: bool = True, **numbers) -> dict:
    """A figure measured once (no spread recorded) against a limit declared beforehand."""
    holds = value >= limit if above else value <= limit
    return {"test": "measured figure against a declared limit (no spread)", "what": what, "value": value,
            "limit": limit, "above": above, **numbers, "verdict": SUPPORTED if holds else NOT_SUPPORTED}  # fmt: skip


def trend(
    x: Sequence[float],
    y: Sequence[float],
    *,
    claim: str = "increasing",
    alpha: float = 0.05,
    what: str = "",
) -> dict:
    """Does ``y`` rise (``increasing``) or fall (``decreasing``) with ``x``?  Spearman's rank correlation.

    Supported when the one-sided p-value in the claimed direction is below
    ``alpha``; not supported when the one in the opposite direction is.
    """
    from scipy import stats

    if claim not in ("increasing", "decreasing"):
        raise ValueError(f"claim must be increasing or decreasing, got {claim!r}")
    out = {"test": "Spearman rank correlation", "what": what, "n": len(x), "claim": claim, "alpha": alpha}
    if len(x) != len(y):
        raise ValueError("x and y must have the same length")
    if len(x) < 3 or len(set(map(float, x))) < 2 or len(set(map(float, y))) < 2:
        return {**out, "rho": None, "p_increasing": None, "p_decreasing": None, "verdict": INCONCLUSIVE,
                "reason": "fewer than three points, or no variation"}  # fmt: skip
    rho = float(stats.spearmanr(x, y).statistic)
    p_inc = float(stats.spearmanr(x, y, alternative="greater").pvalue)
    p_dec = float(stats.spearmanr(x, y, alternative="less").pvalue)
    want, other = (p_inc, p_dec) if claim == "increasing" else (p_dec, p_inc)
    verdict = SUPPORTED if want < alpha else NOT_SUPPORTED if other < alpha else INCONCLUSIVE
    return {**out, "rho": rho, "p_increasing": p_inc, "p_decreasing": p_dec, "verdict": verdict}


def samples(
    a: Sequence[float],
    b: Sequence[float],
    *,
    claim: str = "less",
    alpha: float = 0.05,
    what: str = "",
    labels: tuple[str, str] = ("a", "b"),
) -> dict:
    """Two independent samples (timings, say): is ``b`` smaller (``less``) or larger (``greater``) than ``a``?

    Mann-Whitney U test, one-sided each way; the ratio of the medians ``b / a``
    is reported beside it.
    """
    from scipy import stats

    if claim not in ("greater", "less"):
        raise ValueError(f"claim must be greater or less, got {claim!r}")
    med_a, med_b = _median(a), _median(b)
    out = {
        "test": "Mann-Whitney U test",
        "what": what,
        "labels": list(labels),
        "n": [len(a), len(b)],
        "median_a": med_a,
        "median_b": med_b,
        "ratio_b_over_a": med_b / med_a if med_a else None,
        "claim": claim,
        "alpha": alpha,
    }
    if len(a) < 2 or len(b) < 2:
        return {
            **out,
            "p_greater": None,
            "p_less": None,
            "verdict": INCONCLUSIVE,
            "reason": "fewer than two samples",
        }
    p_less = float(stats.mannwhitneyu(b, a, alternative="less").pvalue)
    p_greater = float(stats.mannwhitneyu(b, a, alternative="greater").pvalue)
    want, other = (p_less, p_greater) if claim == "less" else (p_greater, p_less)
    verdict = SUPPORTED if want < alpha else NOT_SUPPORTED if other < alpha else INCONCLUSIVE
    return {**out, "p_less": p_less, "p_greater": p_greater, "verdict": verdict}


def one_sample(
    values: Sequence[float],
    threshold: float,
    *,
    claim: str = "greater",
    alpha: float = 0.05,
    what: str = "",
) -> dict:
    """Is the mean of ``values`` above (``greater``) or below (``less``) ``threshold``?  One-sample t-test."""
    out = paired([threshold] * len(values), list(values), claim=claim, alpha=alpha, what=what,
                 labels=("threshold", "measured"))  # fmt: skip
    out.update({"test": "one-sample t-test", "threshold": threshold, "mean": out["mean_b"]})
    for k in ("mean_a", "mean_b", "labels"):
        out.pop(k, None)
    return out


def exact(what: str, holds: bool, **numbers) -> dict:
    """A deterministic fact (a parameter count, a size on disk): no test, no noise."""
    return {
        "test": "exact (deterministic)",
        "what": what,
        **numbers,
        "verdict": SUPPORTED if holds else NOT_SUPPORTED,
    }


def combine(tests: Sequence[dict], rule: str = "all") -> str:
    """One verdict from the verdicts of a claim's parts.

    ``all``: supported when every part is, not supported when any part is,
    inconclusive otherwise.  ``any``: supported when any part is, not supported
    when every part is, inconclusive otherwise.  ``majority``: the verdict of
    more than half of the parts, else inconclusive.
    """
    verdicts = [t["verdict"] for t in tests]
    if not verdicts:
        return INCONCLUSIVE
    if rule == "all":
        if NOT_SUPPORTED in verdicts:
            return NOT_SUPPORTED
        return SUPPORTED if all(v == SUPPORTED for v in verdicts) else INCONCLUSIVE
    if rule == "any":
        if SUPPORTED in verdicts:
            return SUPPORTED
        return NOT_SUPPORTED if all(v == NOT_SUPPORTED for v in verdicts) else INCONCLUSIVE
    if rule == "majority":
        for v in (SUPPORTED, NOT_SUPPORTED):
            if verdicts.count(v) * 2 > len(verdicts):
                return v
        return INCONCLUSIVE
    raise ValueError(f"unknown rule {rule!r} (all, any or majority)")


def _median(v: Sequence[float]) -> float:
    s = sorted(map(float, v))
    if not s:
        return float("nan")
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = [float(x) for x in values]
    m = sum(v) / len(v)
    return m, (math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0)
