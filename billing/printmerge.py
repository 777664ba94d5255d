"""One print batch's letters merged into one PDF, in a process of its own.

    python -m billing.printmerge < job.json     # {"paths": [...], "target": "..."}

prints the pages of each letter (after padding) as a JSON list. pypdf keeps
every page of the merged document in memory until it writes it (some 100 MB
for 500 letters), and a Python process rarely gives such memory back: merged
in the worker, every batch would leave the worker that much bigger for the
rest of its life. In a child process it is gone when the child exits, and
the batches of a run are merged side by side (billing.delivery starts them).

Imports nothing of Django: the child starts in a fraction of a second.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from pypdf import PdfReader, PdfWriter


def merge(paths: Sequence[str], target: str) -> list[int]:
    """Write the letters at ``paths``, in this order, as one PDF to ``target``.

    Every letter is padded to an even page count, so duplex printing never puts
    two customers on one sheet. Returns each letter's page count (padded).
    """
    writer = PdfWriter()
    pages = []
    for path in paths:
        reader = PdfReader(path)
        count = len(reader.pages)
        writer.append(reader)
        if count % 2:
            writer.add_blank_page()
            count += 1
        pages.append(count)
    with open(target, "wb") as out:
        writer.write(out)
    return pages


def main() -> None:
    job = json.load(sys.stdin)
    json.dump(merge(job["paths"], job["target"]), sys.stdout)


if __name__ == "__main__":
    main()
