"""README block for the GPU check (``python -m benchmarks.gpu_check``) beside its CPU reference."""

from __future__ import annotations

from pathlib import Path

from fewshot_kd.errors import FewShotKDError
from fewshot_kd.files import read_json

from benchmarks.readme.source import RESULTS_DIR

NAME = "gpu"
CPU_REFERENCE = Path("cpu_reference") / "cpu_smoke_test_not_a_gpu_result.json"
ADAPT_TARGET_S = 15.0
EPISODES_TARGET = 20.0
DEFAULT_SETTING = ("fp32", "truncated", False)


def _step_ms(results: dict, order: str, bf16: bool) -> float | None:
    rows = [r for r in results.get("meta_step", []) if r.get("order") == order and r.get("bf16") == bf16]
    return rows[0]["median_ms"] if rows and "median_ms" in rows[0] else None


def _setting(row: dict) -> tuple:
    return row.get("precision"), row.get("order", "truncated"), bool(row.get("vmap", False))


def _episodes(results: dict, setting: tuple) -> float | None:
    rows = [r for r in results.get("meta_training", []) if _setting(r) == setting]
    return rows[0]["episodes_per_second"] if rows else None


def _fmt(value: float | None, digits: int = 0) -> str:
    return "not measured" if value is None else f"{value:,.{digits}f}"


def gpu() -> str:
    root = RESULTS_DIR / NAME
    gpus = sorted(p for p in root.glob("*.json")) if root.is_dir() else []
    if not gpus:
        raise FewShotKDError(f"{root} holds no GPU results: run `python -m benchmarks.gpu_check` on a GPU")
    cpu = read_json(root / CPU_REFERENCE)
    lines = []
    for path in gpus:
        g = read_json(path)
        commit = (g["settings"].get("commit") or g["environment"]["git_commit"])[:12]
        lines += [f"`{path.name}`: {g['device']}, torch {g['torch']}, from commit `{commit}`; the CPU column is "
                  f"this 2-core CPU, commit `{cpu['environment']['git_commit'][:12]}` (same settings: digits, "
                  f"{g['settings']['ways']}-way, K={g['settings']['shots']}, {g['settings']['inner_steps']} inner steps).", "",
                  "| measure | GPU | 2-core CPU |", "|---|---:|---:|"]
        for order in ("first", "truncated", "second"):
            for bf16 in (False, True):
                label = f"meta-step ms, order {order}, {'bf16 autocast' if bf16 else 'fp32'}"
                lines.append(f"| {label} | {_fmt(_step_ms(g, order, bf16))} | {_fmt(_step_ms(cpu, order, bf16))} |")
        settings = [_setting(r) for r in g.get("meta_training", [])]
        for setting in settings:
            precision, order, vmap = setting
            lines.append(f"| meta-training episodes/s ({precision}, order {order}, {'vmap' if vmap else 'no vmap'}) | "
                         f"{_fmt(_episodes(g, setting), 2)} | {_fmt(_episodes(cpu, setting), 2)} |")
        runs = g.get("adapt_resnet56_k10", {}).get("runs") or [g.get("adapt_resnet56_k10", {})]
        for i, run in enumerate(r for r in runs if "adapt_seconds" in r):
            what = "first call in the process" if len(runs) > 1 and i == 0 else ("warm" if i else "one call")
            lines.append(f"| adapt() s, ResNet-56 K=10, 0.5 MACs int8 ({what}) | {run['adapt_seconds']:.1f} | not run |")
        lines.append(f"| peak GPU memory (MiB) | {g['peak_bytes'] / 2**20:,.0f} | |")
        # the fastest GPU setting against the CPU's default (fp32, truncated order, no vmap)
        fp32_rate = max((_episodes(g, s) for s in settings if s[0] == "fp32"), default=None)
        cpu_rate = _episodes(cpu, DEFAULT_SETTING)
        adapt_s = min((r["adapt_seconds"] for r in runs if "adapt_seconds" in r), default=None)
        lines += ["", f"`pytest -m gpu`: {g['pytest_gpu']['summary']}."]
        if fp32_rate and cpu_rate:
            ratio = fp32_rate / cpu_rate
            lines.append(f"Targets: meta-training at least {EPISODES_TARGET:.0f}x the CPU's episodes per second "
                         f"(the fastest GPU setting against the CPU's default, fp32 truncated without vmap): "
                         f"**{ratio:.2f}x, {'met' if ratio >= EPISODES_TARGET else 'missed'}**; adapt() at most "
                         f"{ADAPT_TARGET_S:.0f} s: **{_fmt(adapt_s, 1)} s, "
                         f"{'met' if adapt_s is not None and adapt_s <= ADAPT_TARGET_S else 'missed'}**.")
            same = [(s, _episodes(g, s), _episodes(cpu, s)) for s in settings]
            lines.append("Same setting on both: " + ", ".join(
                f"{s[0]} {s[1]}{' vmap' if s[2] else ''} {gr / cr:.2f}x" for s, gr, cr in same if gr and cr) + ".")
        agreement = g.get("meta_gradient_bf16_vs_fp32")
        if isinstance(agreement, list):
            lines.append("Cosine of the bf16 and fp32 policy meta-gradients on one episode: " + ", ".join(
                f"{r['cosine']:.3f} at Adam epsilon {r['adam_eps']:g}" for r in agreement) + ".")
    return "\n".join(lines)


BLOCKS = {NAME: gpu}
