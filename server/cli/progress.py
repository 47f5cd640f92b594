"""Progress bars for long commands (on stderr, so stdout stays clean for reports)."""
from __future__ import annotations

import sys
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(unit: str):
    """Yield a ``(done, total, what)`` callback that drives one tqdm bar (``total`` None: not
    known yet). Bytes (unit ``B``) are shown in kB, MB, …"""
    bar = tqdm(unit=unit, unit_scale=unit == "B", file=sys.stderr, dynamic_ncols=True, disable=None)

    def update(done: int, total: int | None, what: str) -> None:
        bar.total = total
        bar.set_postfix_str(what, refresh=False)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()
