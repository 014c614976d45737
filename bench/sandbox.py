"""How fast the sandbox shows something: `python app.py` (no credentials) → the page answers → the first
case card from the sample feed is in the channel; and the bot process's memory after a while of traffic.

Prints figures; asserts nothing. Usage: .venv/bin/python bench/sandbox.py [--runs 5] [--soak 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.kit.sandbox import clean_env, free_port  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_run(soak: float) -> tuple[float, float, float, int]:
    port = free_port()
    with tempfile.TemporaryDirectory() as cwd:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=cwd, env=clean_env(PORT=str(port)),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        page = first_card = None
        try:
            while first_card is None:
                if time.perf_counter() - start > 60:
                    raise RuntimeError("no card within 60 s")
                try:
                    if page is None and httpx.get(f"{base}/sandbox", timeout=1).status_code == 200:
                        page = time.perf_counter() - start
                    if page is not None:
                        state = httpx.get(f"{base}/sandbox/ui/state", params={"user": "U0ALICE"}, timeout=2).json()
                        if any(m["channel"] == "C0CASES" for m in state["messages"]):
                            first_card = time.perf_counter() - start
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            time.sleep(soak)
            memory = rss_mib(process.pid)
            cards = len([m for m in httpx.get(f"{base}/sandbox/ui/state", params={"user": "U0ALICE"}).json()["messages"]
                         if m["channel"] == "C0CASES" and not m["thread_ts"]])
        finally:
            process.terminate()
            process.wait(timeout=15)
    assert page is not None
    return page, first_card, memory, cards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--soak", type=float, default=60.0, help="seconds of sample traffic before reading memory")
    args = parser.parse_args()
    os.environ.pop("SLACK_BOT_TOKEN", None)
    results = []
    for n in range(args.runs):
        page, card, memory, cards = one_run(args.soak if n == 0 else 0.0)
        results.append((page, card))
        line = f"run {n + 1}: page answers after {page:.2f} s, first case card after {card:.2f} s"
        if n == 0:
            line += f"; after {args.soak:.0f} s of sample traffic: {cards} cards, bot RSS {memory:.0f} MiB"
        print(line, flush=True)
    print(f"median: page {statistics.median(p for p, _ in results):.2f} s, "
          f"first card {statistics.median(c for _, c in results):.2f} s")


if __name__ == "__main__":
    main()
