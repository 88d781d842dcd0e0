"""Percentiles of durations, computed exactly from the raw values.

Method: linear interpolation between closest ranks (Hyndman & Fan type 7, the default of NumPy
and of ``statistics.quantiles(method="inclusive")``).  For ``n`` sorted values ``x[0..n-1]`` the
``q``-th percentile sits at position ``h = (n - 1) * q / 100``; the result is
``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``.  So p0 is the minimum, p100 the
maximum, p50 of an even count the mean of the two middle values, and a single value is every percentile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float, *, presorted: bool = False) -> float:
    """The ``q``-th percentile (0 <= q <= 100) of ``values``; raises ValueError for no values or a bad q."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be between 0 and 100, got {q}")
    data = values if presorted else sorted(values)
    position = (len(data) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(data) - 1)
    below, above = data[low], data[high]
    if below == above:
        return float(below)
    value = below + (position - low) * (above - below)
    # Rounding must never carry the result outside the two values it lies between.
    return float(min(max(value, below), above))
