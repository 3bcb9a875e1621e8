"""Human-readable numbers for tables."""

from __future__ import annotations

from typing import Any


def count(value: int | None) -> str:
    """``1234567`` → ``"1.23 M"``."""
    if value is None:
        return "–"
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {suffix}"
    return str(int(value))


def size(value: int | None) -> str:
    """Bytes in binary units: ``1536`` → ``"1.50 KiB"``."""
    if value is None:
        return "–"
    for factor, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {suffix}"
    return f"{int(value)} B"


def millis(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}" if value < 10 else f"{value:.1f}"


def ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def metric(value: Any, percent: bool = False) -> str:
    """A metric value; fractions as percentages when ``percent``, floats with 4 significant digits."""
    if value is None:
        return "–"
    if percent and isinstance(value, (int, float)):
        return f"{100 * value:.2f}%"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
