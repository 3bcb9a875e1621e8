"""Number formatting shared by the README blocks."""

from __future__ import annotations

GAP_TARGETS = {5: 3.0, 10: 1.5, 20: 1.0}  # accuracy points below the teacher that the project aims for, per K


def pm(pair: tuple[float, float], digits: int = 1) -> str:
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def span(values, digits: int = 1, unit: str = "") -> str:
    """``lo-hi`` of ``values`` (one number when they round alike)."""
    lo, hi = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return f"{lo}{unit}" if lo == hi else f"{lo}-{hi}{unit}"


def goals(gaps: dict[int, float]) -> str:
    """Which per-K gap targets ``gaps`` meet, in words."""
    met = [f"K={k} ({GAP_TARGETS[k]:.1f})" for k, g in gaps.items() if round(g, 1) <= GAP_TARGETS[k]]
    missed = [f"K={k} ({GAP_TARGETS[k]:.1f})" for k, g in gaps.items() if round(g, 1) > GAP_TARGETS[k]]
    if not missed:
        return "meets every target: " + ", ".join(met)
    if not met:
        return "meets none of the targets: " + ", ".join(missed)
    return f"meets the {' and '.join(met)} target but not {' or '.join(missed)}"


def gap(a: float, b: float) -> float:
    """``a - b`` of the values as shown (one decimal), so quoted gaps match the tables."""
    return round(a, 1) - round(b, 1)


def sci(x: float) -> str:
    """``1e-3`` / ``3.5e-4`` style."""
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def commit_list(commits) -> str:
    """``commits`` as backquoted hashes joined by commas, in the order given."""
    return ", ".join(f"`{c}`" for c in commits)


def commits_phrase(commits) -> str:
    """``commit `a``` or ``commits `a`, `b```: the commits a README block's cells came from."""
    commits = list(commits)
    return f"commit{'s' if len(commits) > 1 else ''} {commit_list(commits)}"
