"""The table `python app.py check` prints."""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.ports import Check


def table(rows: Sequence[Check]) -> str:
    width = max([len(r.what) for r in rows] + [5])
    lines = [f"{'check'.ljust(width)}  result  detail", f"{'-' * width}  ------  ------"]
    for row in rows:
        lines.append(f"{row.what.ljust(width)}  {'ok' if row.ok else 'FAIL':6}  {row.detail}")
        if not row.ok and row.fix:
            lines.append(f"{' ' * width}          fix: {row.fix}")
    failed = sum(1 for r in rows if not r.ok)
    lines.append("")
    lines.append("everything works" if not failed else f"{failed} problem(s) to fix")
    return "\n".join(lines)
