"""The run's journal (``DIR/journal.jsonl``): one JSON line per finished image, written after its
files, so whatever stops a run (Ctrl-C, a lost server, a killed client) leaves outputs that agree
with it. A re-run skips an image whose entry has the same input hash and whose mask file still
has the hash the entry recorded; everything else is sent again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

Entry = dict[str, Any]


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Journal:
    """Finished images of an output folder, by name (the last entry of a name wins)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out / "journal.jsonl"
        self.entries: dict[str, Entry] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a killed process: that image is simply done again
                self.entries[entry["image"]] = entry

    def done(self, name: str, input_hash: str) -> bool:
        """Whether ``name`` finished OK from the same input and its mask file is the one written then."""
        entry = self.entries.get(name)
        if entry is None or entry.get("status") != "ok" or entry.get("input_sha256") != input_hash:
            return False
        mask = self.out / entry["mask"]
        return mask.is_file() and file_hash(mask) == entry.get("mask_sha256")

    def append(self, entry: Entry) -> None:
        """Record one image (flushed to disk before returning)."""
        self.out.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(entry, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.entries[entry["image"]] = entry

    def finished(self, names: list[str]) -> list[Entry]:
        """The entries of ``names`` that exist, in that order."""
        return [self.entries[n] for n in names if n in self.entries]
