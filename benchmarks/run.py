"""Run a benchmark suite: ``python -m benchmarks.run --suite smoke``.

Results go to ``benchmarks/results/<suite>/`` (or ``--out``): ``results.json`` (every
invocation's command, config, commit, dirty flag, start time and machine, recorded as it starts;
every cell with its commit and dirty flag), ``results.md`` (mean ± std over seeds) and PNG plots.
A killed run resumes where it stopped; ``--fresh`` starts over.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from fewshot_kd.errors import NotEnoughExamplesError

from benchmarks.harness.runner import run_suite
from benchmarks.harness.suite import load_suite, single_task_suite
from benchmarks.methods.base import list_methods

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--suite", help="suite name in benchmarks/suites/ or a suite file")
    which.add_argument("--task", help="a single task-family file, run with --base-suite's methods, shots, seeds")
    parser.add_argument("--base-suite", default="smoke", help="with --task: whose methods/shots/seeds to use")
    parser.add_argument("--data-root", help="folder with the datasets and weights (default: $FEWSHOT_KD_DATA or ../shared/data)")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results/<suite>)")
    parser.add_argument("--tasks", nargs="+", help="only these task families of the suite")
    parser.add_argument("--methods", nargs="+", help=f"only these methods (known: {', '.join(list_methods())})")
    parser.add_argument("--shots", nargs="+", type=int, help="only these K")
    parser.add_argument("--seeds", nargs="+", type=int, help="only these seeds")
    parser.add_argument("--fresh", action="store_true", help="discard finished cells and start over")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    suite = load_suite(args.suite) if args.suite else single_task_suite(args.task, load_suite(args.base_suite))
    overrides = {key: tuple(value) for key, value in (("tasks", args.tasks), ("methods", args.methods),
                                                            ("shots", args.shots), ("seeds", args.seeds)) if value}
    if overrides:
        suite = type(suite)(**{**suite.to_dict(), **overrides})
    out = args.out or RESULTS_DIR / suite.name
    console = Console()
    try:
        result = run_suite(suite, out, data_root=args.data_root, fresh=args.fresh, console=console)
    except NotEnoughExamplesError as error:  # a K the data cannot give: say so, no traceback
        raise SystemExit(f"error: {error}") from None
    console.print(f"\n[bold]wrote[/bold] {out}/results.json, results.md and plots")
    console.print((out / "results.md").read_text())
    return result


if __name__ == "__main__":
    main()
