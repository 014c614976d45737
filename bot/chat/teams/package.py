"""The Teams app package: manifest.json, color.png and outline.png in one zip, built by `python app.py teams-package`.

Teams installs a bot from such a zip (Apps → Manage your apps → Upload an app). The manifest follows app manifest
schema 1.17 (`packageName` is deprecated there and left out). The icons are drawn here with the standard library,
so the repository holds no binary files and the package is byte-for-byte the same for the same inputs.

Standard library only: this module must load without the Bot Framework SDK.
"""

from __future__ import annotations

import functools
import json
import math
import re
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "APP_ID_ENV",
    "DEFAULT_OUT",
    "MANIFEST_VERSION",
    "SCHEMA_URL",
    "PackageError",
    "build_package",
    "color_icon",
    "command",
    "is_guid",
    "manifest",
    "outline_icon",
]

MANIFEST_VERSION = "1.17"
SCHEMA_URL = f"https://developer.microsoft.com/json-schemas/teams/v{MANIFEST_VERSION}/MicrosoftTeams.schema.json"
APP_ID_ENV = "MICROSOFT_APP_ID"
DEFAULT_OUT = Path("build/socialops-teams.zip")
COLOR_FILE, COLOR_SIZE = "color.png", 192
OUTLINE_FILE, OUTLINE_SIZE = "outline.png", 32
ACCENT = "#1D3557"
"""The Slack app's background colour (manifest.yml), so both desks look alike."""
PLACEHOLDER_URL = "https://socialops.example.com"
"""The schema requires developer URLs; Teams shows them on the app's About page. Pass your own."""

SCOPES = ("team", "groupChat", "personal")
COMMANDS = (
    ("stats", "Response-time and volume numbers: stats, stats 7d, stats 30d"),
    ("oncall", "Who escalations mention"),
    ("whoami", "Your Teams user id and this conversation's id (for the config)"),
    ("help", "What the bot does and the commands it understands"),
)
SHORT_DESCRIPTION = "Social customer care cases in Teams: claim, reply, escalate, resolve."
FULL_DESCRIPTION = (
    "SocialOps posts every new mention, direct message, comment and review from your social accounts as a case "
    "card in a channel. Claim a case, answer the customer from the card (the reply is posted as the brand), "
    "escalate it to the person on call, and resolve it; the card shows who did what. Mention the bot with "
    "'stats' for response times and volumes, or 'help' for its commands."
)

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*(:\d+)?$")


class PackageError(ValueError):
    """The package cannot be built as asked; the message names the setting and what to change."""


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))


def _limit(setting: str, value: str, most: int) -> str:
    if not value.strip():
        raise PackageError(f"{setting} must not be empty")
    if len(value) > most:
        raise PackageError(f"{setting} is {len(value)} characters; Teams allows at most {most}")
    return value


def _https(setting: str, value: str) -> str:
    if not value.startswith("https://") or len(value) <= len("https://"):
        raise PackageError(f"{setting} must be an https:// address, got {value!r}")
    return _limit(setting, value, 2048)


def manifest(
    app_id: str,
    *,
    name: str = "SocialOps",
    short_description: str = SHORT_DESCRIPTION,
    full_description: str = FULL_DESCRIPTION,
    developer_name: str = "SocialOps",
    website_url: str = PLACEHOLDER_URL,
    privacy_url: str = f"{PLACEHOLDER_URL}/privacy",
    terms_url: str = f"{PLACEHOLDER_URL}/terms",
    valid_domains: list[str] | None = None,
    version: str = "1.0.0",
    accent_color: str = ACCENT,
) -> dict[str, Any]:
    """The app manifest (schema 1.17) for the bot whose Microsoft App ID is `app_id`.

    The app's own id is the bot's App ID: one GUID to keep, and Teams needs a GUID for both.
    """
    if not is_guid(app_id):
        raise PackageError(f"{APP_ID_ENV}: {app_id!r} is not a Microsoft App ID; it is a GUID such as "
                           "1b4e28ba-2fa1-11d2-883f-0016d3cca427 (Azure portal → your Azure Bot → Configuration)")
    if not _SEMVER.match(version):
        raise PackageError(f"version must be three numbers such as 1.0.0 (semver), got {version!r}")
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", accent_color):
        raise PackageError(f"accent colour must be #RRGGBB, got {accent_color!r}")
    domains = list(valid_domains or [])
    if len(domains) > 16:
        raise PackageError(f"Teams allows at most 16 valid domains, got {len(domains)}")
    for domain in domains:
        if not _DOMAIN.match(domain):
            raise PackageError(f"valid domain {domain!r} must be a host name such as bot.example.com "
                               "(no https://, no path)")
    commands = [{"title": title, "description": text} for title, text in COMMANDS]
    return {
        "$schema": SCHEMA_URL,
        "manifestVersion": MANIFEST_VERSION,
        "version": version,
        "id": app_id.lower(),
        "developer": {
            "name": _limit("developer name", developer_name, 32),
            "websiteUrl": _https("website URL", website_url),
            "privacyUrl": _https("privacy URL", privacy_url),
            "termsOfUseUrl": _https("terms of use URL", terms_url),
        },
        "name": {"short": _limit("name", name, 30), "full": _limit("name", name, 100)},
        "description": {
            "short": _limit("short description", short_description, 80),
            "full": _limit("full description", full_description, 4000),
        },
        "icons": {"outline": OUTLINE_FILE, "color": COLOR_FILE},
        "accentColor": accent_color.upper(),
        "bots": [{
            "botId": app_id.lower(),
            "scopes": list(SCOPES),
            "supportsFiles": False,
            "isNotificationOnly": False,
            # The schema asks for one command list per scope; the menu is the same in each.
            "commandLists": [{"scopes": [scope], "commands": commands} for scope in SCOPES],
        }],
        # identity: who clicked; messageTeamMembers: the bot writes to the on-call person directly.
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": domains,
    }


def build_package(app_id: str, out: Path, **options: Any) -> Path:
    """Write the zip Teams uploads: manifest.json, color.png and outline.png at its root. Returns `out`."""
    document = manifest(app_id, **options)
    files = {
        "manifest.json": (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode(),
        COLOR_FILE: color_icon(),
        OUTLINE_FILE: outline_icon(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file_name, data in files.items():
            entry = zipfile.ZipInfo(file_name, date_time=(1980, 1, 1, 0, 0, 0))  # same bytes on every build
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data)
    return out


# ---- icons -------------------------------------------------------------------------------------------------------

Point = tuple[float, float]
Shape = Callable[[float, float], float]
"""Signed distance in pixels from a point to a shape's edge: negative inside."""


def _rounded_rect(left: float, top: float, right: float, bottom: float, radius: float) -> Shape:
    cx, cy, hw, hh = (left + right) / 2, (top + bottom) / 2, (right - left) / 2, (bottom - top) / 2

    def distance(x: float, y: float) -> float:
        qx, qy = abs(x - cx) - (hw - radius), abs(y - cy) - (hh - radius)
        return math.hypot(max(qx, 0.0), max(qy, 0.0)) + min(max(qx, qy), 0.0) - radius

    return distance


def _polygon(*points: Point) -> Shape:
    edges = list(zip(points, points[1:] + points[:1], strict=True))

    def distance(x: float, y: float) -> float:
        nearest, inside = math.inf, False
        for (ax, ay), (bx, by) in edges:
            ex, ey = bx - ax, by - ay
            t = max(0.0, min(1.0, ((x - ax) * ex + (y - ay) * ey) / (ex * ex + ey * ey)))
            nearest = min(nearest, math.hypot(x - ax - t * ex, y - ay - t * ey))
            if (ay > y) != (by > y) and x < ax + (y - ay) * ex / ey:
                inside = not inside
        return -nearest if inside else nearest

    return distance


def _circle(cx: float, cy: float, radius: float) -> Shape:
    return lambda x, y: math.hypot(x - cx, y - cy) - radius


def _union(*shapes: Shape) -> Shape:
    return lambda x, y: min(shape(x, y) for shape in shapes)


def _bubble(scale: float) -> tuple[Shape, list[Shape]]:
    """A speech bubble with three dots, drawn on a 32-unit grid and scaled: the body, then the dots."""
    s = scale
    body = _union(_rounded_rect(3 * s, 5 * s, 29 * s, 23 * s, 5 * s),
                  _polygon((8 * s, 20 * s), (15 * s, 20 * s), (7 * s, 29 * s)))
    dots = [_circle(x * s, 14 * s, 2 * s) for x in (10, 16, 22)]
    return body, dots


def _coverage(inside: Callable[[float, float], bool], x: int, y: int, samples: int = 4) -> float:
    """How much of pixel (x, y) is inside, from a samples × samples grid (anti-aliased edges)."""
    step = 1 / samples
    hits = sum(inside(x + (i + 0.5) * step, y + (j + 0.5) * step) for i in range(samples) for j in range(samples))
    return hits / (samples * samples)


def _pixel_coverage(distance: Callable[[float, float], float], x: int, y: int) -> float:
    centre = distance(x + 0.5, y + 0.5)
    if centre <= -1.0:
        return 1.0
    if centre >= 1.0:
        return 0.0
    return _coverage(lambda px, py: distance(px, py) <= 0, x, y)


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


@functools.cache
def color_icon(size: int = COLOR_SIZE, accent: str = ACCENT) -> bytes:
    """Full-colour icon: a white speech bubble on the accent colour, edge to edge (Teams rounds the corners).

    The bubble keeps to the middle half of the square, where Teams asks the symbol to be.
    """
    scale = size / 64
    body, dots = _bubble(scale)
    left, top = size / 4, size / 4 - scale  # the tail hangs lower than the body: centre the whole bubble

    def ink(x: float, y: float) -> float:
        return body(x - left, y - top)

    def hole(x: float, y: float) -> float:
        return min(dot(x - left, y - top) for dot in dots)

    background, white = _hex(accent), (255, 255, 255)
    rows: list[bytes] = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            cover = _pixel_coverage(ink, x, y)
            if cover:
                cover *= 1 - _pixel_coverage(hole, x, y)
            row += bytes(round(b + (w - b) * cover) for b, w in zip(background, white, strict=True))
        rows.append(bytes(row))
    return _png(size, size, rows, alpha=False)


@functools.cache
def outline_icon(size: int = OUTLINE_SIZE) -> bytes:
    """Outline icon: the bubble's outline and dots in white on a transparent background."""
    body, dots = _bubble(size / 32)
    half_stroke = size / 32

    def line(x: float, y: float) -> float:
        return abs(body(x, y)) - half_stroke

    def dot(x: float, y: float) -> float:
        return min(d(x, y) for d in dots)

    rows: list[bytes] = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            cover = max(_pixel_coverage(line, x, y), _pixel_coverage(dot, x, y))
            row += bytes((255, 255, 255, round(255 * cover)))
        rows.append(bytes(row))
    return _png(size, size, rows, alpha=True)


def _png(width: int, height: int, rows: Sequence[bytes], *, alpha: bool) -> bytes:
    """An 8-bit RGB or RGBA PNG, unfiltered rows."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 6 if alpha else 2, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + row for row in rows), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


# ---- command line ------------------------------------------------------------------------------------------------

USAGE = """usage: python app.py teams-package [--out FILE] [--app-id GUID] [--version X.Y.Z]
                                   [--developer-name NAME] [--website-url URL] [--privacy-url URL] [--terms-url URL]

Builds the Microsoft Teams app package (manifest.json, color.png, outline.png) for uploading to Teams.

    --out FILE            where to write the zip (default: build/socialops-teams.zip)
    --app-id GUID         the bot's Microsoft App ID (default: MICROSOFT_APP_ID)
    --version X.Y.Z       the app's version (default 1.0.0); raise it each time you upload a changed package
    --developer-name NAME, --website-url URL, --privacy-url URL, --terms-url URL
                          shown on the app's About page in Teams (default: SocialOps, https://socialops.example.com)
"""

_OPTIONS = {"--out": "out", "--app-id": "app_id", "--version": "version", "--developer-name": "developer_name",
            "--website-url": "website_url", "--privacy-url": "privacy_url", "--terms-url": "terms_url"}


def _parse(argv: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    words = iter(argv)
    for word in words:
        option, equals, value = word.partition("=")
        if option not in _OPTIONS:
            raise PackageError(f"unknown option {word!r}")
        if not equals:
            following = next(words, None)
            if following is None:
                raise PackageError(f"{option} needs a value")
            value = following
        values[_OPTIONS[option]] = value
    return values


def command(argv: list[str], env: Mapping[str, str]) -> int:
    """`python app.py teams-package [options]`: write the package and say how to install it. 0, or 2 on bad input."""
    if any(word in ("-h", "--help") for word in argv):
        print(USAGE)
        return 0
    try:
        options = _parse(argv)
        out = Path(options.pop("out", str(DEFAULT_OUT)))
        app_id = options.pop("app_id", None) or env.get(APP_ID_ENV, "").strip()
        if not app_id:
            raise PackageError(f"{APP_ID_ENV} is not set: put the bot's Microsoft App ID (Azure portal → your Azure "
                               f"Bot → Configuration → Microsoft App ID) in {APP_ID_ENV}, or pass --app-id")
        path = build_package(app_id, out, **options)
    except PackageError as error:
        print(f"socialops: teams-package: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"socialops: teams-package: cannot write {error.filename or ''}: {error.strerror}", file=sys.stderr)
        return 2
    version = options.get("version", "1.0.0")
    print(f"Wrote {path} (Teams app {app_id.lower()}, version {version}).\n"
          "Next:\n"
          "  1. In Azure, the bot's messaging endpoint must be https://<your host>/api/messages and the Microsoft "
          "Teams channel must be on.\n"
          "  2. In Teams: Apps → Manage your apps → Upload an app → Upload a custom app, and choose this file.\n"
          "  3. Add the app to the team whose channel gets the cases (Add to a team), then mention the bot there "
          "with 'help'.\n"
          "To change the app later, build again with a higher --version and upload it the same way.")
    return 0
