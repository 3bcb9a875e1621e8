"""``python -m benchmarks.readme``: rewrite README.md's result blocks; ``--check`` exits 1 when they disagree."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from fewshot_kd.errors import FewShotKDError

from benchmarks.readme import beyond, cifar10, fidelity, gpu, heldout, meta, progressive, smoke, speed, text
from benchmarks.readme.markers import render

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = {**cifar10.BLOCKS, **meta.BLOCKS, **text.BLOCKS, **smoke.BLOCKS, **fidelity.BLOCKS, **heldout.BLOCKS, **gpu.BLOCKS,
          **progressive.BLOCKS, **beyond.BLOCKS, **speed.BLOCKS}


def rendered(readme: Path = README) -> tuple[str, str]:
    """The README as it is and as the results render it."""
    current = readme.read_text()
    return current, render(current, BLOCKS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.readme", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if README.md and the results disagree")
    args = parser.parse_args(argv)
    try:
        current, new = rendered(README)
    except FewShotKDError as e:  # dirty results, markers out of step
        print(f"error: {e}", file=sys.stderr)
        return 2
    if current == new:
        print("README.md agrees with benchmarks/results")
        return 0
    if args.check:
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), new.splitlines(True), "README.md", "rendered"))
        print("README.md disagrees with benchmarks/results: run `python -m benchmarks.readme`", file=sys.stderr)
        return 1
    README.write_text(new)
    print("README.md rewritten from benchmarks/results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
