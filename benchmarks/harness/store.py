"""Results of finished cells, one JSON line each, so a killed suite resumes where it stopped."""

from __future__ import annotations

import json
import os
from pathlib import Path


def cell_key(task: str, method: str, k: int, seed: int) -> str:
    return f"{task}|{method}|k={k}|seed={seed}"


class CellStore:
    """Append-only JSONL of finished cells. A line is written and flushed (fsync) only once
    its cell has finished, so a crash loses at most the cell in progress."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, dict] = {}
        if self.path.is_file():
            text = self.path.read_text()
            if text and not text.endswith("\n"):  # a line cut by a kill: drop it, or the next add() would join it
                text = text[: text.rfind("\n") + 1]
                with self.path.open("r+") as f:
                    f.truncate(len(text.encode()))
            for line in text.splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill: that cell runs again
                self.records[record["key"]] = record

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def add(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records[record["key"]] = record

    def all(self) -> list[dict]:
        return list(self.records.values())
