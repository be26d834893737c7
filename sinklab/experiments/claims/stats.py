"""Confidence intervals for seed means, in plain math (no SciPy): Student's t quantile, Welch's interval for
a difference of two means, the paired and one-sample intervals, and TOST equivalence."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 400):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return result


def incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom (t >= 0)."""
    return 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t (0.5 <= p < 1); df = inf gives the normal quantile."""
    if not 0.5 <= p < 1.0:
        raise ValueError(f"p must be in [0.5, 1), got {p}")
    if math.isinf(df) or df > 1e7:
        return NormalDist().inv_cdf(p)
    low, high = 0.0, 1.0
    while t_upper_tail(high, df) > 1.0 - p:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_upper_tail(mid, df) > 1.0 - p:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def variance(values: Sequence[float]) -> float:
    """The sample variance (n - 1); 0 for a single value."""
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return sum((v - m) ** 2 for v in values) / (len(values) - 1)


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided confidence interval (lo, hi are None when the spread is unknown)."""

    estimate: float
    lo: float | None
    hi: float | None
    df: float | None = None

    def text(self, digits: int = 2) -> str:
        if self.lo is None or self.hi is None:
            return f"{self.estimate:+.{digits}f} [interval unknown: needs >= 2 seeds]"
        return f"{self.estimate:+.{digits}f} [{self.lo:+.{digits}f}, {self.hi:+.{digits}f}]"


def _interval(estimate: float, se: float, df: float, level: float) -> Interval:
    half = 0.0 if se == 0.0 else t_quantile(0.5 + level / 2.0, df) * se
    return Interval(estimate, estimate - half, estimate + half, df)


def one_sample(values: Sequence[float], level: float) -> Interval:
    """The mean of `values` with its t interval (n - 1 degrees of freedom)."""
    n = len(values)
    if n < 2:
        return Interval(mean(values), None, None)
    return _interval(mean(values), math.sqrt(variance(values) / n), n - 1, level)


def paired(a: Sequence[float], b: Sequence[float], level: float) -> Interval:
    """Mean of a - b over the same seeds, with the paired t interval."""
    return one_sample([x - y for x, y in zip(a, b, strict=True)], level)


def welch(a: Sequence[float], b: Sequence[float], level: float) -> Interval:
    """mean(a) - mean(b) with Welch's interval (Welch-Satterthwaite degrees of freedom)."""
    diff = mean(a) - mean(b)
    if len(a) < 2 or len(b) < 2:
        return Interval(diff, None, None)
    qa, qb = variance(a) / len(a), variance(b) / len(b)
    se2 = qa + qb
    if se2 == 0.0:
        return Interval(diff, diff, diff, math.inf)
    df = se2**2 / (qa**2 / (len(a) - 1) + qb**2 / (len(b) - 1))
    return _interval(diff, math.sqrt(se2), df, level)
