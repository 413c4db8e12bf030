"""Numbers as a report's HTML shows them: fixed digits, significant figures, percentages,
intervals with infinite bounds, flags with their meaning; "—" for what is unknown."""

from __future__ import annotations

import math

from analysis.exports import json_safe


def num(value, digits: int = 3) -> str:
    value = json_safe(value)
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def sig(value, digits: int = 3) -> str:
    """A value of any size in `digits` significant figures (scales: 1.2e+09)."""
    value = json_safe(value)
    if value is None or isinstance(value, str):
        return "—" if value is None else value
    return f"{value:.{digits}g}"


def pct(value) -> str:
    value = json_safe(value)
    return "—" if value is None else f"{100 * value:.1f}%"


def _bound(value, fmt) -> str:
    if value == math.inf:
        return "∞"
    if value == -math.inf:
        return "−∞"
    return fmt(value)


def interval(low, high, digits: int = 3, fmt=None) -> str:
    """"[low, high]" with infinite bounds as ∞; "—" where there is no interval (NaN)."""
    fmt = fmt or (lambda v: num(v, digits))
    low, high = (None if v is None else float(v) for v in (low, high))
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return "—"
    return f"[{_bound(low, fmt)}, {_bound(high, fmt)}]"


def flag_list(names, meanings: dict) -> list[dict]:
    return [{"name": name, "meaning": meanings.get(name, name)} for name in names]
