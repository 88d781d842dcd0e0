"""Tail probabilities of counts (Poisson, negative binomial, compound Poisson) and Anscombe's
variance-stabilising transform, for :mod:`clisight.detect.novelty`."""

from __future__ import annotations

import math

__all__: list[str] = []


def _compound_tail(k: int, mu: float, sizes: list[float]) -> float:
    """``P(S >= k)`` for ``S`` the sum of ``Poisson(mu)`` sizes drawn from ``sizes`` (Panjer's recursion)."""
    g = [math.exp(-mu)]
    total = g[0]
    top = len(sizes) - 1
    for s in range(1, k):
        acc = 0.0
        for j in range(1, min(s, top) + 1):
            acc += j * sizes[j] * g[s - j]
        gs = mu / s * acc
        g.append(gs)
        total += gs
        if total >= 1.0 - 1e-12:
            return 1e-12
    return max(1.0 - total, 1e-12)


def _anscombe(value: float) -> float:
    """Anscombe's variance-stabilising transform of a count, ``2 sqrt(x + 3/8)``, extended
    continuously and monotonically below 0."""
    if value >= 0.0:
        return 2.0 * math.sqrt(value + 0.375)
    return 4.0 * math.sqrt(0.375) - 2.0 * math.sqrt(0.375 - value)


def _poisson_tail(k: int, mu: float) -> float:
    """``P(N >= k)`` for ``N ~ Poisson(mu)``, accurate far into the tail."""
    if k <= 0:
        return 1.0
    if k <= mu:
        # the bulk: 1 - P(N < k)
        term = math.exp(-mu)
        total = term
        for i in range(1, k):
            term *= mu / i
            total += term
        return max(1.0 - total, 1e-300)
    log_term = -mu + k * math.log(mu) - math.lgamma(k + 1)
    term = 1.0
    total = 1.0
    i = k
    while term > 1e-12 * total:
        i += 1
        term *= mu / i
        total += term
    return max(math.exp(log_term) * total, 1e-300)


def _count_tail(k: int, mean: float, var: float) -> float:
    """``P(N >= k)`` for a count with this mean and variance: negative binomial when overdispersed
    (novelties come in bursts), Poisson otherwise."""
    if var <= mean * (1.0 + 1e-9):
        return _poisson_tail(k, mean)
    r = mean * mean / (var - mean)
    pi = 1.0 - mean / var
    log_first = r * math.log1p(-pi)  # log P(N = 0)
    if k <= mean:
        term = math.exp(log_first)
        total = term
        for i in range(k - 1):
            term *= (i + r) / (i + 1) * pi
            total += term
        return max(1.0 - total, 1e-300)
    log_term = math.lgamma(k + r) - math.lgamma(r) - math.lgamma(k + 1) + log_first + k * math.log(pi)
    term = 1.0
    total = 1.0
    i = k
    while term > 1e-12 * total:
        term *= (i + r) / (i + 1) * pi
        total += term
        i += 1
    return max(math.exp(log_term) * total, 1e-300)
