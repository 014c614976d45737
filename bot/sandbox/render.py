"""Slack Block Kit (exactly what the bot sends) as safe HTML fragments for the sandbox page.

Pure functions, stdlib only, no I/O. The output is built only from HTML-escaped text and the tags this module
writes itself: whatever a customer typed can at most become bold, italic, struck, code or a quote, never a tag,
an attribute, a link, a mention or a broadcast. The only links are Slack's `<http(s)://…|label>` tokens, and
nothing here ever loads anything (images are shown as their alt text).

`names` maps Slack ids to display names: users (`U0ALICE` → "Alice"), and optionally channels and user groups.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["EMOJI", "mrkdwn_to_html", "render_blocks", "render_message", "render_view"]

EMOJI: dict[str, str] = {
    # the ones the bot uses (bot/chat/slack/blocks.py)
    "white_check_mark": "\u2705",
    "x": "\u274c",
    "rotating_light": "\U0001f6a8",
    "leftwards_arrow_with_hook": "\u21a9\ufe0f",
    "hourglass_flowing_sand": "\u23f3",
    "memo": "\U0001f4dd",
    "fast_forward": "\u23e9",
    "no_entry_sign": "\U0001f6ab",
    "large_blue_circle": "\U0001f535",
    "large_yellow_circle": "\U0001f7e1",
    "large_orange_circle": "\U0001f7e0",
    "white_circle": "\u26aa",
    "raised_hand": "\u270b",
    "pager": "\U0001f4df",
    "cyclone": "\U0001f300",
    "outbox_tray": "\U0001f4e4",
    # a few common ones
    "large_green_circle": "\U0001f7e2",
    "red_circle": "\U0001f534",
    "warning": "\u26a0\ufe0f",
    "heavy_check_mark": "\u2714\ufe0f",
    "information_source": "\u2139\ufe0f",
    "hourglass": "\u231b",
    "tada": "\U0001f389",
    "eyes": "\U0001f440",
    "wave": "\U0001f44b",
    "+1": "\U0001f44d",
    "thumbsup": "\U0001f44d",
    "-1": "\U0001f44e",
    "thumbsdown": "\U0001f44e",
    "star": "\u2b50",
    "speech_balloon": "\U0001f4ac",
    "bell": "\U0001f514",
    "bar_chart": "\U0001f4ca",
}

_OPEN, _CLOSE = "\x00", "\x01"
"""Placeholder delimiters for fragments of finished HTML; removed from every input first."""
_PLACEHOLDER = re.compile("\x00(\\d+)\x01")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TOKEN = re.compile(r"<([^<>\n]*)>")
_ENTITY = re.compile(r"&(lt|gt|amp);")
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&"}
_EMOJI_CODE = re.compile(r":([a-z0-9_+\-]+):")
_PRE = re.compile(r"```(.+?)```", re.DOTALL)
_CODE = re.compile(r"`([^`\n]+)`")
_QUOTE = re.compile(r"^(?:>|&gt;) ?")
_INLINE = [
    # Slack's rule: the opening marker follows the start or a non-word character and precedes a non-space;
    # the closing one follows a non-space and precedes the end or a non-word character. Unmatched stays literal.
    (re.compile(r"(?<![\w*])\*(?=[^*\s])([^*\n]*?[^*\s])\*(?![\w*])"), "b"),
    (re.compile(r"(?<!\w)_(?=[^_\s])([^_\n]*?[^_\s])_(?!\w)"), "i"),
    (re.compile(r"(?<![\w~])~(?=[^~\s])([^~\n]*?[^~\s])~(?![\w~])"), "s"),
]
_USER = re.compile(r"^@([A-Z0-9]+)$")
_CHANNEL = re.compile(r"^#([A-Z0-9]+)$")
_SUBTEAM = re.compile(r"^!subteam\^([A-Z0-9]+)$")
_BROADCAST = re.compile(r"^!(here|channel|everyone)$")
_DATE = re.compile(r"^!date\^(-?\d{1,12})\^([^^]*)(?:\^.*)?$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_SAFE_URL = re.compile(r"^(?:https?://|mailto:)[^\s\x00-\x1f\x7f]+$", re.IGNORECASE)
_DATE_TOKEN = re.compile(r"\{([a-z_]+)\}")
_TIME_TOKENS = {"time", "time_secs"}


def esc(text: str) -> str:
    """HTML-escape text for content or a double-quoted attribute value."""
    return html.escape(text, quote=True)


def _attrs(pairs: list[tuple[str, str | None]]) -> str:
    """` name="value"` for each pair whose value is not None, values escaped."""
    return "".join(f' {name}="{esc(value)}"' for name, value in pairs if value is not None)


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _clean(text: str) -> str:
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _decode(text: str) -> str:
    """Slack's three entities, decoded in a single pass (so `&amp;lt;` stays the visible text `&lt;`)."""
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)


def _emoji(escaped: str) -> str:
    return _EMOJI_CODE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), escaped)


# --- mrkdwn ---------------------------------------------------------------------------------------------------


def mrkdwn_to_html(text: str, names: Mapping[str, str]) -> str:
    """Slack mrkdwn as an HTML fragment: tokens `<…>`, entities, *b* _i_ ~s~ `code` ```pre```, > quotes, emoji."""
    fragments: list[str] = []

    def keep(fragment: str) -> str:
        fragments.append(fragment)
        return f"{_OPEN}{len(fragments) - 1}{_CLOSE}"

    raw = _TOKEN.sub(lambda m: keep(_token(m.group(1), names)), _clean(text))
    raw = _PRE.sub(lambda m: keep(_pre(m.group(1))), raw)
    groups: list[tuple[bool, list[str]]] = []
    for line in raw.split("\n"):
        quoted = _QUOTE.match(line)
        if quoted:
            line = line[quoted.end():]
        formatted = _inline(line, keep)
        if groups and groups[-1][0] == bool(quoted):
            groups[-1][1].append(formatted)
        else:
            groups.append((bool(quoted), [formatted]))
    out = "".join(
        f'<blockquote class="bk-quote">{"<br>".join(lines)}</blockquote>' if quoted else "<br>".join(lines)
        for quoted, lines in groups
    )

    def resolve(part: str) -> str:  # a code span or block may hold earlier fragments (tokens)
        return _PLACEHOLDER.sub(lambda m: resolve(fragments[int(m.group(1))]), part)

    return resolve(out)


def _text(raw: str) -> str:
    """Plain mrkdwn text between markers: entities decoded, HTML-escaped, emoji shortcodes as emoji."""
    return _emoji(esc(_decode(raw)))


def _pre(raw: str) -> str:
    if raw.startswith("\n"):
        raw = raw[1:]
    if raw.endswith("\n"):
        raw = raw[:-1]
    return f'<pre class="bk-pre">{esc(_decode(raw))}</pre>'


def _inline(line: str, keep: Callable[[str], str]) -> str:
    line = _CODE.sub(lambda m: keep(f'<code class="bk-code">{esc(_decode(m.group(1)))}</code>'), line)
    return _format(line)


def _format(raw: str) -> str:
    out: list[str] = []
    while raw:
        best: tuple[re.Match[str], str] | None = None
        for pattern, tag in _INLINE:
            match = pattern.search(raw)
            if match and (best is None or match.start() < best[0].start()):
                best = (match, tag)
        if best is None:
            out.append(_text(raw))
            break
        match, tag = best
        out.append(_text(raw[: match.start()]))
        out.append(f"<{tag}>{_format(match.group(1))}</{tag}>")
        raw = raw[match.end():]
    return "".join(out)


def _token(body: str, names: Mapping[str, str]) -> str:
    """One Slack `<…>` token as finished HTML."""
    target, _, label = body.partition("|")
    if m := _USER.match(target):
        shown = names.get(m.group(1)) or _decode(label).lstrip("@") or m.group(1)
        return f'<span class="bk-mention" data-user="{esc(m.group(1))}">@{esc(shown)}</span>'
    if m := _CHANNEL.match(target):
        shown = _decode(label).lstrip("#") or names.get(m.group(1)) or m.group(1)
        return f'<span class="bk-mention bk-channel">#{esc(shown)}</span>'
    if m := _SUBTEAM.match(target):
        shown = _decode(label).lstrip("@") or names.get(m.group(1)) or m.group(1)
        return f'<span class="bk-mention bk-usergroup">@{esc(shown)}</span>'
    if m := _BROADCAST.match(target):
        return f'<span class="bk-mention bk-broadcast">@{m.group(1)}</span>'
    if m := _DATE.match(target):
        return f'<span class="bk-date">{esc(_date(int(m.group(1)), _decode(m.group(2)), _decode(label)))}</span>'
    url = _decode(target)
    if _SAFE_URL.match(url):
        shown = _decode(label) or url
        link = _attrs([("class", "bk-link"), ("href", url), ("target", "_blank"), ("rel", "noopener noreferrer")])
        return f"<a{link}>{esc(shown)}</a>"
    if label and (_SCHEME.match(target) or target.startswith("!")):
        return esc(_decode(label))  # a link Slack would make but we refuse (javascript:, data:, …): its label
    if _SCHEME.match(target):
        return esc(url)
    return esc(f"<{_decode(body)}>")  # not a token Slack knows: the characters as written


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _date(stamp: int, template: str, fallback: str) -> str:
    """`<!date^…>` in UTC (the sandbox has no reader's time zone); the fallback for what it cannot show."""
    try:
        moment = datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        return fallback
    long_date = f"{moment:%B} {_ordinal(moment.day)}, {moment.year}"
    parts = {
        "date_num": f"{moment:%Y-%m-%d}",
        "date": long_date,
        "date_pretty": long_date,
        "date_short": f"{moment:%b} {moment.day}, {moment.year}",
        "date_short_pretty": f"{moment:%b} {moment.day}, {moment.year}",
        "date_long": f"{moment:%A}, {long_date}",
        "date_long_pretty": f"{moment:%A}, {long_date}",
        "time": f"{moment:%H:%M}",
        "time_secs": f"{moment:%H:%M:%S}",
    }
    used = _DATE_TOKEN.findall(template)
    if not used or any(token not in parts for token in used):
        return fallback
    shown = _DATE_TOKEN.sub(lambda m: parts[m.group(1)], template)
    return shown + " UTC" if _TIME_TOKENS.intersection(used) else shown


# --- text objects and elements ---------------------------------------------------------------------------------


def _plain(obj: object) -> str:
    """A plain_text (or mrkdwn, read as plain) object's text, escaped; emoji shortcodes converted when asked."""
    if not isinstance(obj, dict):
        return esc(_clean(_str(obj)))
    shown = esc(_clean(_str(obj.get("text"))))
    return _emoji(shown) if obj.get("emoji", True) is not False else shown


def _text_object(obj: object, names: Mapping[str, str]) -> str:
    """A text object as a block-level div: mrkdwn formatted, plain_text escaped with its line breaks."""
    if isinstance(obj, dict) and obj.get("type") == "mrkdwn":
        return f'<div class="bk-mrkdwn">{mrkdwn_to_html(_str(obj.get("text")), names)}</div>'
    return f'<div class="bk-plain">{_plain(obj).replace(chr(10), "<br>")}</div>'


def _inline_object(obj: object, names: Mapping[str, str]) -> str:
    if isinstance(obj, dict) and obj.get("type") == "mrkdwn":
        return mrkdwn_to_html(_str(obj.get("text")), names)
    return _plain(obj).replace("\n", "<br>")


def _unsupported(kind: str, what: object) -> str:
    return f'<span class="bk-unsupported">[unsupported {kind}: {esc(_str(what) or "?")}]</span>'


def _image_alt(element: dict[str, Any]) -> str:
    alt = _str(element.get("alt_text")) or "image"
    return f'<span class="bk-image-alt">[image: {esc(_clean(alt))}]</span>'


def _button(element: dict[str, Any], block_id: str) -> str:
    style = element.get("style")
    classes = "bk-button" + (f" bk-{style}" if style in ("primary", "danger") else "")
    attrs = _attrs([("class", classes), ("data-action-id", _str(element.get("action_id"))),
                    ("data-block-id", block_id), ("data-value", _str(element.get("value")))])
    return f'<button type="button"{attrs}>{_plain(element.get("text"))}</button>'


def _option(option: object, selected: str | None) -> str:
    if not isinstance(option, dict):
        return ""
    value = _str(option.get("value"))
    mark = " selected" if selected is not None and value == selected else ""
    return f'<option{_attrs([("value", value)])}{mark}>{_plain(option.get("text"))}</option>'


def _select(element: dict[str, Any], block_id: str, name: str | None = None) -> str:
    initial = element.get("initial_option")
    selected = _str(initial.get("value")) if isinstance(initial, dict) else None
    placeholder = _plain(element.get("placeholder")) if element.get("placeholder") else "Select an option"
    mark = "" if selected is not None else " selected"
    options = [f'<option value="" disabled{mark}>{placeholder}</option>']
    raw_options = element.get("options")
    for option in raw_options if isinstance(raw_options, list) else []:
        options.append(_option(option, selected))
    groups = element.get("option_groups")
    for group in groups if isinstance(groups, list) else []:
        if isinstance(group, dict):
            inner = group.get("options")
            rows = "".join(_option(o, selected) for o in (inner if isinstance(inner, list) else []))
            label = group.get("label")
            shown = _clean(_str(label.get("text"))) if isinstance(label, dict) else ""
            options.append(f'<optgroup{_attrs([("label", shown)])}>{rows}</optgroup>')
    attrs = _attrs([("class", "bk-select"), ("name", name), ("data-action-id", _str(element.get("action_id"))),
                    ("data-block-id", block_id)])
    return f"<select{attrs}>{''.join(options)}</select>"


def _element(element: object, block_id: str) -> str:
    """An interactive element (actions block or section accessory)."""
    if not isinstance(element, dict):
        return _unsupported("element", None)
    kind = element.get("type")
    if kind == "button":
        return _button(element, block_id)
    if kind == "static_select":
        return _select(element, block_id)
    if kind == "image":
        return _image_alt(element)
    return _unsupported("element", kind)


# --- blocks ----------------------------------------------------------------------------------------------------


def _section(block: dict[str, Any], block_id: str, names: Mapping[str, str]) -> str:
    parts: list[str] = []
    if block.get("text"):
        parts.append(_text_object(block["text"], names))
    fields = block.get("fields")
    if isinstance(fields, list) and fields:
        cells = "".join(f'<div class="bk-field">{_inline_object(f, names)}</div>' for f in fields)
        parts.append(f'<div class="bk-fields">{cells}</div>')
    if isinstance(block.get("accessory"), dict):
        parts.append(f'<div class="bk-accessory">{_element(block["accessory"], block_id)}</div>')
    return "".join(parts)


def _context(block: dict[str, Any], names: Mapping[str, str]) -> str:
    items: list[str] = []
    elements = block.get("elements")
    for element in elements if isinstance(elements, list) else []:
        if isinstance(element, dict) and element.get("type") == "image":
            items.append(f'<span class="bk-context-element">{_image_alt(element)}</span>')
        else:
            items.append(f'<span class="bk-context-element">{_inline_object(element, names)}</span>')
    return "".join(items)


def _actions(block: dict[str, Any], block_id: str) -> str:
    elements = block.get("elements")
    return "".join(_element(e, block_id) for e in (elements if isinstance(elements, list) else []))


def _image(block: dict[str, Any]) -> str:
    title = block.get("title")
    caption = f'<div class="bk-image-title">{_plain(title)}</div>' if title else ""
    return caption + f"<div>{_image_alt(block)}</div>"


def _input(block: dict[str, Any], block_id: str) -> str:
    """A modal's input block as a form field (the block's own div is the contract's `bk-input`)."""
    optional = block.get("optional") is True
    extra = ' <span class="bk-optional">(optional)</span>' if optional else ""
    parts = [f'<label class="bk-label">{_plain(block.get("label"))}{extra}</label>']
    element = block.get("element")
    if isinstance(element, dict) and element.get("type") == "plain_text_input":
        action_id = _str(element.get("action_id"))
        max_length = element.get("max_length")
        min_length = element.get("min_length")
        placeholder = element.get("placeholder")
        common: list[tuple[str, str | None]] = [
            ("class", "bk-text"), ("name", action_id), ("data-block-id", block_id), ("data-action-id", action_id),
            ("maxlength", str(max_length) if isinstance(max_length, int) else None),
            ("minlength", str(min_length) if isinstance(min_length, int) else None),
            ("placeholder", _clean(_str(placeholder.get("text"))) if isinstance(placeholder, dict) else None),
        ]
        required = "" if optional else " required"
        initial = _clean(_str(element.get("initial_value")))
        if element.get("multiline") is True:
            # a leading newline right after <textarea> is dropped by HTML parsers: add one so it survives
            lead = "\n" if initial.startswith("\n") else ""
            parts.append(f'<textarea{_attrs([*common, ("rows", "4")])}{required}>{lead}{esc(initial)}</textarea>')
        else:
            parts.append(f'<input{_attrs([("type", "text"), *common, ("value", initial)])}{required}>')
    elif isinstance(element, dict) and element.get("type") == "static_select":
        parts.append(_select(element, block_id, name=_str(element.get("action_id"))))
    else:
        parts.append(_unsupported("element", element.get("type") if isinstance(element, dict) else None))
    if block.get("hint"):
        parts.append(f'<div class="bk-hint">{_plain(block.get("hint"))}</div>')
    parts.append(f'<div class="bk-error"{_attrs([("data-error-for", block_id)])}></div>')
    return "".join(parts)


def _block(block: object, names: Mapping[str, str]) -> str:
    if not isinstance(block, dict):
        return f'<div class="bk-block bk-unsupported">{_unsupported("block", None)}</div>'
    kind = _str(block.get("type"))
    raw_id = block.get("block_id")
    block_id = raw_id if isinstance(raw_id, str) else None
    element_block_id = block_id or ""
    if kind == "section":
        body = _section(block, element_block_id, names)
    elif kind == "context":
        body = _context(block, names)
    elif kind == "actions":
        body = _actions(block, element_block_id)
    elif kind == "header":
        body = f'<h3 class="bk-heading">{_plain(block.get("text"))}</h3>'
    elif kind == "divider":
        body = '<hr class="bk-hr">'
    elif kind == "image":
        body = _image(block)
    elif kind == "input":
        body = _input(block, element_block_id)
    else:
        attrs = _attrs([("class", "bk-block bk-unsupported"), ("data-block-id", block_id)])
        return f"<div{attrs}>{_unsupported('block', kind)}</div>"
    attrs = _attrs([("class", f"bk-block bk-{kind}"), ("data-block-id", block_id)])
    return f"<div{attrs}>{body}</div>"


def render_blocks(blocks: list[dict[str, Any]], names: Mapping[str, str]) -> str:
    return "".join(_block(block, names) for block in blocks)


def render_message(blocks: list[dict[str, Any]] | None, text: str, names: Mapping[str, str]) -> str:
    """A message as Slack shows it: its blocks, or its `text` as mrkdwn when it has none."""
    if blocks:
        return render_blocks(blocks, names)
    return f'<div class="bk-block bk-section"><div class="bk-mrkdwn">{mrkdwn_to_html(text, names)}</div></div>'


def render_view(view: dict[str, Any], names: Mapping[str, str]) -> str:
    """A modal's body (its blocks); the page adds title, submit and close from the view's JSON."""
    blocks = view.get("blocks")
    return render_blocks(blocks if isinstance(blocks, list) else [], names)
