"""The inbox pages: plain server-rendered HTML. Every captured value is untrusted: escape it."""

from __future__ import annotations

import re
import time
from html import escape
from urllib.parse import quote

from sandbox.faults import PROVIDERS, Fault
from sandbox.inbox import CapturedMessage

# Inline styles only; pages send a CSP that forbids scripts altogether.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; frame-src 'self'; "
    "form-action 'self'; base-uri 'none'"
)
_URL_RE = re.compile(r"https?://[^\s<>\"'`]+")
_TRAILING = ".,;:!?)]}'\""

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5rem;border:1px solid #ddd}
iframe{width:100%;height:28rem;border:1px solid #ccc}
.error{background:#fdd;padding:.5rem;border:1px solid #c66}
form.fault input[type=number],form.fault input[type=text]{width:6rem}
.muted{color:#777}
"""


def e(value: object) -> str:
    return escape(str(value), quote=True)


def layout(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{e(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def linkify(text: str) -> str:
    """Escape text and turn http(s) URLs into links (only those: no javascript: links)."""
    out: list[str] = []
    position = 0
    for match in _URL_RE.finditer(text):
        url = match.group(0)
        stripped = url.rstrip(_TRAILING)
        end = match.start() + len(stripped)
        out.append(e(text[position : match.start()]))
        out.append(
            f'<a href="{e(stripped)}" rel="noopener noreferrer" target="_blank">{e(stripped)}</a>'
        )
        position = end
    out.append(e(text[position:]))
    return "".join(out)


def _when(epoch: float) -> str:
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) + f".{int(epoch % 1 * 1000):03d}"
    )


def render_index(
    messages: list[CapturedMessage],
    stats: dict[str, dict[str, int]],
    faults: dict[str, Fault],
    error: str | None = None,
) -> str:
    parts = ["<h1>GPMAS sandbox inbox</h1>"]
    if error:
        parts.append(f'<p class="error">{e(error)}</p>')
    parts.append(_stats_table(stats))
    parts.append(_faults_section(faults))
    parts.append(f"<h2>Messages ({len(messages)})</h2>")
    if not messages:
        parts.append('<p class="muted">Nothing captured yet.</p>')
    else:
        rows = [
            "<table><tr><th>received</th><th>provider</th><th>to</th><th>subject</th>"
            "<th>X-GPMAS-Job</th></tr>"
        ]
        for message in reversed(messages):
            rows.append(
                f"<tr><td>{e(_when(message.received_at))}</td><td>{e(message.provider)}</td>"
                f"<td>{e(', '.join(message.to))}</td>"
                f'<td><a href="/messages/{quote(message.id)}">'
                f"{e(message.subject or '(no subject)')}</a></td>"
                f"<td>{e(message.job or '')}</td></tr>"
            )
        rows.append("</table>")
        parts.append("".join(rows))
    parts.append(
        '<form method=post action="/reset"><button>Reset inbox, stats and faults</button></form>'
    )
    return layout("GPMAS sandbox inbox", "".join(parts))


def _stats_table(stats: dict[str, dict[str, int]]) -> str:
    keys = ["calls", "accepted", "rejected", "faulted", "messages", "in_flight"]
    head = "".join(f"<th>{e(k)}</th>" for k in keys)
    rows = "".join(
        f"<tr><th>{e(provider)}</th>"
        + "".join(f"<td>{e(counts.get(k, 0))}</td>" for k in keys)
        + "</tr>"
        for provider, counts in stats.items()
    )
    return f"<h2>Stats</h2><table><tr><th>provider</th>{head}</tr>{rows}</table>"


def _faults_section(faults: dict[str, Fault]) -> str:
    parts = ["<h2>Faults</h2><table><tr><th>provider</th><th>current</th><th>set</th></tr>"]
    for provider in PROVIDERS:
        current = faults.get(provider)
        shown = (
            ", ".join(f"{k}={v}" for k, v in current.to_dict().items() if v != getattr(Fault(), k))
            if current
            else "none"
        )
        parts.append(
            f"<tr><th>{e(provider)}</th><td>{e(shown or 'none')}</td>"
            f"<td>{_fault_form(provider, current)}</td></tr>"
        )
    parts.append("</table>")
    return "".join(parts)


def _fault_form(provider: str, current: Fault | None) -> str:
    f = current or Fault()

    def number(name: str, value: object, step: str = "1") -> str:
        shown = "" if value is None else e(value)
        field = f'<input type=number name="{e(name)}" step="{step}" value="{shown}">'
        return f"<label>{e(name)} {field}</label> "

    def checkbox(name: str, checked: bool) -> str:
        state = " checked" if checked else ""
        return f'<label><input type=checkbox name="{e(name)}"{state}> {e(name)}</label> '

    return (
        '<form class=fault method=post action="/faults">'
        f'<input type=hidden name=provider value="{e(provider)}">'
        + number("status", f.status)
        + f'<label>code <input type=text name=code value="{e(f.code or "")}"></label> '
        + number("error_rate", f.error_rate, "0.01")
        + number("latency_ms", f.latency_ms)
        + checkbox("hang", f.hang)
        + number("hang_seconds", f.hang_seconds, "0.1")
        + checkbox("outage", f.outage)
        + number("retry_after", f.retry_after)
        + "<button name=action value=set>set</button> "
        "<button name=action value=clear>clear</button></form>"
    )


def render_message(message: CapturedMessage) -> str:
    parts = [
        '<p><a href="/">&larr; inbox</a></p>',
        f"<h1>{e(message.subject or '(no subject)')}</h1>",
        "<table>",
        f"<tr><th>provider</th><td>{e(message.provider)}</td></tr>",
        f"<tr><th>received</th><td>{e(_when(message.received_at))}</td></tr>",
        f"<tr><th>from</th><td>{e(message.from_email)}</td></tr>",
        f"<tr><th>to</th><td>{e(', '.join(message.to))}</td></tr>",
        f"<tr><th>provider message id</th><td>{e(message.provider_message_id)}</td></tr>",
        "</table><h2>Headers</h2><table>",
    ]
    for name, value in message.headers.items():
        parts.append(f"<tr><th>{e(name)}</th><td>{e(value)}</td></tr>")
    parts.append("</table>")
    if message.metadata:
        parts.append("<h2>Metadata</h2><table>")
        for name, value in message.metadata.items():
            parts.append(f"<tr><th>{e(name)}</th><td>{e(value)}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Text</h2>")
    parts.append(
        f"<pre>{linkify(message.text)}</pre>" if message.text else "<p class=muted>none</p>"
    )
    parts.append("<h2>HTML</h2>")
    if message.html:
        # No allow-scripts: the message's scripts never run. Links open in a new tab.
        document = '<base target="_blank">' + message.html
        parts.append(
            '<iframe sandbox="allow-popups allow-popups-to-escape-sandbox" '
            f'referrerpolicy="no-referrer" srcdoc="{e(document)}"></iframe>'
        )
    else:
        parts.append("<p class=muted>none</p>")
    parts.append("<h2>Attachments</h2>")
    if not message.attachments:
        parts.append("<p class=muted>none</p>")
    for index, (filename, content_type, content) in enumerate(message.attachments):
        link = f"/messages/{quote(message.id)}/attachments/{index}"
        size = f"{len(content)} {'chars' if isinstance(content, str) else 'bytes'}"
        parts.append(
            f'<h3><a href="{link}">{e(filename or "(unnamed)")}</a> '
            f"<span class=muted>{e(content_type)}, {size}</span></h3>"
        )
        if isinstance(content, str):
            parts.append(f"<pre>{e(content)}</pre>")
    parts.append("<h2>Raw</h2>")
    parts.append(f"<pre>{e(message.raw)}</pre>")
    return layout(message.subject or "message", "".join(parts))


def render_not_found(what: str) -> str:
    return layout("not found", f'<p>{e(what)} not found.</p><p><a href="/">inbox</a></p>')
