"""Rewrite the README between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` markers."""

from __future__ import annotations

import re
from typing import Callable

from fewshot_kd.errors import FewShotKDError

BLOCK = re.compile(r"(<!-- results:([\w-]+) -->\n)(.*?)(<!-- /results:\2 -->)", flags=re.S)


def block_names(text: str) -> list[str]:
    return [m.group(2) for m in BLOCK.finditer(text)]


def render(text: str, blocks: dict[str, Callable[[], str]]) -> str:
    """``text`` with every marked block replaced by its renderer's output; every block must be known and present."""
    names = block_names(text)
    unknown, missing = set(names) - set(blocks), set(blocks) - set(names)
    if unknown or missing:
        raise FewShotKDError(f"README markers: unknown {sorted(unknown)}, missing {sorted(missing)}")
    return BLOCK.sub(lambda m: m.group(1) + blocks[m.group(2)]().rstrip("\n") + "\n" + m.group(4), text)
