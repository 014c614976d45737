"""The Teams app package is what an admin uploads to Teams: a zip Teams accepts, with a manifest that passes the
schema's documented rules and icons of the exact sizes and kinds Teams asks for."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot.chat.teams.package import PackageError, build_package, command, manifest

ROOT = Path(__file__).resolve().parent.parent
APP_ID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
ENV = {"MICROSOFT_APP_ID": APP_ID}

_GUID = {"type": "string", "pattern": "^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"}
_URL = {"type": "string", "maxLength": 2048, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"}
_SCOPES = {"type": "array", "maxItems": 3, "items": {"enum": ["team", "personal", "groupChat"]}}
SCHEMA: dict[str, Any] = {
    # Written from the required fields and limits of the app manifest schema 1.17
    # (developer.microsoft.com/json-schemas/teams/v1.17/MicrosoftTeams.schema.json), for the parts we use.
    "type": "object",
    "additionalProperties": False,
    "required": ["manifestVersion", "version", "id", "developer", "name", "description", "icons", "accentColor"],
    "properties": {
        "$schema": {"const": "https://developer.microsoft.com/json-schemas/teams/v1.17/MicrosoftTeams.schema.json"},
        "manifestVersion": {"const": "1.17"},
        "version": {"type": "string", "pattern": r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$"},
        "id": _GUID,
        "developer": {
            "type": "object", "additionalProperties": False,
            "required": ["name", "websiteUrl", "privacyUrl", "termsOfUseUrl"],
            "properties": {"name": {"type": "string", "maxLength": 32}, "websiteUrl": _URL, "privacyUrl": _URL,
                           "termsOfUseUrl": _URL},
        },
        "name": {
            "type": "object", "additionalProperties": False, "required": ["short", "full"],
            "properties": {"short": {"type": "string", "maxLength": 30}, "full": {"type": "string", "maxLength": 100}},
        },
        "description": {
            "type": "object", "additionalProperties": False, "required": ["short", "full"],
            "properties": {"short": {"type": "string", "maxLength": 80},
                           "full": {"type": "string", "maxLength": 4000}},
        },
        "icons": {
            "type": "object", "additionalProperties": False, "required": ["outline", "color"],
            "properties": {"outline": {"type": "string"}, "color": {"type": "string"}},
        },
        "accentColor": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
        "bots": {
            "type": "array", "maxItems": 1,
            "items": {
                "type": "object", "additionalProperties": False, "required": ["botId", "scopes"],
                "properties": {
                    "botId": _GUID, "scopes": _SCOPES,
                    "needsChannelSelector": {"type": "boolean"}, "isNotificationOnly": {"type": "boolean"},
                    "supportsFiles": {"type": "boolean"}, "supportsCalling": {"type": "boolean"},
                    "supportsVideo": {"type": "boolean"},
                    "commandLists": {
                        "type": "array", "maxItems": 3,
                        "items": {
                            "type": "object", "additionalProperties": False, "required": ["scopes", "commands"],
                            "properties": {
                                "scopes": _SCOPES,
                                "commands": {
                                    "type": "array", "maxItems": 10,
                                    "items": {
                                        "type": "object", "additionalProperties": False,
                                        "required": ["title", "description"],
                                        "properties": {"title": {"type": "string", "maxLength": 32},
                                                       "description": {"type": "string", "maxLength": 128}},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
        "permissions": {"type": "array", "maxItems": 2, "items": {"enum": ["identity", "messageTeamMembers"]}},
        "validDomains": {"type": "array", "maxItems": 16, "items": {"type": "string", "maxLength": 2048}},
    },
}


def read_png(data: bytes) -> tuple[int, int, int, list[list[tuple[int, ...]]]]:
    """Width, height, colour type and pixel rows of an 8-bit PNG, checking signature and CRCs on the way."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    chunks: list[tuple[bytes, bytes]] = []
    at = 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        at += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, compression, filtering, interlace) == (8, 0, 0, 0)
    channels = {2: 3, 6: 4}[colour]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * channels
    assert len(raw) == height * (stride + 1)
    rows: list[list[tuple[int, ...]]] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
            else:
                assert kind == 0, f"unknown filter {kind}"
        rows.append([tuple(line[x:x + channels]) for x in range(0, stride, channels)])
        previous = line
    return width, height, colour, rows


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    path = build_package(APP_ID, tmp_path_factory.mktemp("teams") / "socialops-teams.zip")
    return zipfile.ZipFile(io.BytesIO(path.read_bytes()))


def test_the_zip_holds_exactly_the_manifest_and_two_icons_at_its_root(package: zipfile.ZipFile) -> None:
    assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
    assert package.testzip() is None


def test_the_manifest_passes_the_documented_schema(package: zipfile.ZipFile) -> None:
    document = json.loads(package.read("manifest.json").decode("utf-8"))
    jsonschema.validate(document, SCHEMA)
    assert "packageName" not in document  # deprecated since manifest 1.17
    assert document["icons"] == {"color": "color.png", "outline": "outline.png"}


def test_the_schema_would_catch_a_wrong_scope() -> None:
    document = manifest(APP_ID)
    document["bots"][0]["scopes"] = ["channel"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMA)


def test_the_bot_is_the_registered_bot_in_channels_group_chats_and_personal_chat(package: zipfile.ZipFile) -> None:
    document = json.loads(package.read("manifest.json"))
    assert document["id"] == APP_ID
    (bot,) = document["bots"]
    assert bot["botId"] == APP_ID
    assert sorted(bot["scopes"]) == ["groupChat", "personal", "team"]
    assert bot["supportsFiles"] is False and bot["isNotificationOnly"] is False
    assert sorted(scope for commands in bot["commandLists"] for scope in commands["scopes"]) == sorted(bot["scopes"])
    for commands in bot["commandLists"]:
        menu = {command["title"]: command["description"] for command in commands["commands"]}
        assert menu["stats"] == "Response-time and volume numbers: stats, stats 7d, stats 30d"
        assert "help" in menu


def test_the_colour_icon_is_192_pixels_in_full_colour(package: zipfile.ZipFile) -> None:
    width, height, colour, rows = read_png(package.read("color.png"))
    assert (width, height) == (192, 192)
    pixels = {pixel[:3] for row in rows for pixel in row}
    assert (255, 255, 255) in pixels and (0x1D, 0x35, 0x57) in pixels  # a white bubble on the accent colour
    if colour == 6:
        assert all(pixel[3] == 255 for row in rows for pixel in row)


def test_the_outline_icon_is_32_pixels_white_on_transparent(package: zipfile.ZipFile) -> None:
    width, height, colour, rows = read_png(package.read("outline.png"))
    assert (width, height, colour) == (32, 32, 6)  # RGBA
    pixels = [pixel for row in rows for pixel in row]
    assert all(pixel[:3] == (255, 255, 255) or pixel[3] == 0 for pixel in pixels)
    assert any(pixel[3] == 0 for pixel in pixels) and any(pixel[3] == 255 for pixel in pixels)
    assert all(row[0][3] == 0 and row[-1][3] == 0 for row in rows)  # the glyph does not touch the sides


def test_an_app_id_that_is_not_a_guid_is_refused() -> None:
    with pytest.raises(PackageError, match="MICROSOFT_APP_ID: 'socialops-bot' is not a Microsoft App ID"):
        manifest("socialops-bot")


def test_teams_limits_are_enforced_before_upload() -> None:
    with pytest.raises(PackageError, match="name is 31 characters; Teams allows at most 30"):
        manifest(APP_ID, name="S" * 31)
    with pytest.raises(PackageError, match="version must be three numbers"):
        manifest(APP_ID, version="1.0")
    with pytest.raises(PackageError, match="website URL must be an https:// address"):
        manifest(APP_ID, website_url="socialops.example.com")
    with pytest.raises(PackageError, match=r"no https://"):
        manifest(APP_ID, valid_domains=["https://bot.example.com"])
    assert manifest(APP_ID, valid_domains=["bot.example.com"])["validDomains"] == ["bot.example.com"]


def test_the_same_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    first = build_package(APP_ID, tmp_path / "a.zip").read_bytes()
    second = build_package(APP_ID, tmp_path / "b.zip").read_bytes()
    assert first == second


def test_command_writes_the_package_and_says_how_to_upload_it(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "teams.zip"
    assert command(["--out", str(out), "--version", "1.2.3"], ENV) == 0
    said = capsys.readouterr().out
    assert str(out) in said
    assert "Apps → Manage your apps → Upload an app → Upload a custom app" in said
    assert "https://<your host>/api/messages" in said
    document = json.loads(zipfile.ZipFile(out).read("manifest.json"))
    assert (document["id"], document["version"]) == (APP_ID, "1.2.3")


def test_command_writes_to_build_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert command([], ENV) == 0
    assert zipfile.ZipFile(tmp_path / "build" / "socialops-teams.zip").namelist()


def test_app_id_option_wins_over_the_environment(tmp_path: Path) -> None:
    other = "00000000-1111-2222-3333-444444444444"
    assert command([f"--out={tmp_path / 'x.zip'}", "--app-id", other], ENV) == 0
    assert json.loads(zipfile.ZipFile(tmp_path / "x.zip").read("manifest.json"))["bots"][0]["botId"] == other


@pytest.mark.parametrize(("env", "expected"), [
    ({"MICROSOFT_APP_ID": "socialops-bot"}, "MICROSOFT_APP_ID: 'socialops-bot' is not a Microsoft App ID"),
    ({}, "MICROSOFT_APP_ID is not set"),
])
def test_command_refuses_a_missing_or_malformed_app_id(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       env: dict[str, str], expected: str) -> None:
    out = tmp_path / "teams.zip"
    assert command(["--out", str(out)], env) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_command_names_an_unknown_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert command(["--outt", "x.zip"], ENV) == 2
    assert "unknown option '--outt'" in capsys.readouterr().err


def test_building_the_package_needs_no_bot_framework_sdk() -> None:
    code = ("import sys, bot.chat.teams.package; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('botbuilder', 'botframework')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
