"""Starting `python app.py sandbox` as a real process on a free loopback port, and talking to its page API."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent.parent
POLICY = ROOT / "tests" / "fixtures" / "sandbox" / "policy.yml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "SOCIALOPS_", "DATABASE_URL", "GENERIC_WEBHOOK_SECRET", "PORT"))}
    env.update(extra)
    return env


@contextmanager
def running_sandbox(*args: str, env: dict[str, str] | None = None, log: Path | None = None,
                    ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Yields (base URL, process) once /healthz answers; stops the process (SIGTERM) afterwards."""
    port = free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "sandbox", "--port", str(port), *args],
                               env=env if env is not None else clean_env(SOCIALOPS_SLACK_PACE="0.05"),
                               cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the sandbox exited with {process.returncode}"
                                     + (f": {log.read_text()[-2000:]}" if log else ""))
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the sandbox did not start within 30 s")
            time.sleep(0.1)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            out.close()  # type: ignore[union-attr]


class Page:
    """What the sandbox page does, through the same endpoints, as one persona at a time."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=15)

    def state(self, user: str = "U0ALICE") -> dict[str, Any]:
        response = self.http.get("/sandbox/ui/state", params={"user": user})
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"/sandbox/ui/{path}", json=body)

    def wait(self, predicate: Any, timeout: float = 15.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = predicate()
            except (LookupError, AssertionError, StopIteration):
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout}s: {what}")
            time.sleep(0.1)
