"""The inbox pages: plain server-rendered HTML. Every captured value is untrusted: escape it."""

from __future__ import annotations

import re
import time
from html import escape
from urllib.parse import quote

from sandbox.faults import PROVIDERS, WEBHOOK_FAULTS, Fault
from sandbox.inbox import CapturedMessage

# Inline styles only; pages send a CSP that forbids scripts altogether.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; frame-src 'self'; "
    "form-action 'self'; base-uri 'none'"
)
_URL_RE = re.compile(r"https?://[^\s<>\"'`]+")
_TRAILING = ".,;:!?)]}'\""

_STYLE = """
*,*::before,*::after{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:1rem;color:#222}
.scroll{overflow-x:auto;margin:.5rem 0 1.5rem}
table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
td,pre{overflow-wrap:anywhere}
.scroll td{overflow-wrap:normal}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5rem;border:1px solid #ddd}
.preview{border:1px solid #ccc;resize:vertical;overflow:hidden;height:70vh;min-height:16rem}
.preview iframe{display:block;width:100%;height:100%;border:0}
.error{background:#fdd;padding:.5rem;border:1px solid #c66}
.faults{display:flex;flex-wrap:wrap;gap:1rem;margin-bottom:1.5rem}
.faults section{border:1px solid #ccc;padding:.5rem .75rem;flex:1 1 17rem;max-width:24rem}
.faults h3{margin:0 0 .25rem}
form.fault{display:grid;grid-template-columns:max-content 5.5rem max-content;gap:.3rem .5rem}
form.fault{align-items:center}
form.fault input[type=number],form.fault input[type=text]{width:100%}
form.fault .buttons{grid-column:1/-1;display:flex;gap:.5rem}
form.fault select{width:100%}
.muted{color:#777}
"""


def e(value: object) -> str:
    return escape(str(value), quote=True)


def layout(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        '<link rel=icon href="data:,">'
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
    events: list[dict] | None = None,
) -> str:
    parts = ["<h1>GPMAS sandbox inbox</h1>"]
    if error:
        parts.append(f'<p class="error">{e(error)}</p>')
    parts.append(_stats_table(stats))
    parts.append(_faults_section(faults))
    if events is not None:
        parts.append(_events_table(events))
    parts.append(f"<h2>Messages ({len(messages)})</h2>")
    if not messages:
        parts.append('<p class="muted">Nothing captured yet.</p>')
    else:
        rows = [
            "<div class=scroll><table><tr><th>received</th><th>provider</th><th>to</th>"
            "<th>subject</th><th>X-GPMAS-Job</th></tr>"
        ]
        for message in reversed(messages):
            rows.append(
                f"<tr><td>{e(_when(message.received_at))}</td><td>{e(message.provider)}</td>"
                f"<td>{e(', '.join(message.to))}</td>"
                f'<td><a href="/messages/{quote(message.id)}">'
                f"{e(message.subject or '(no subject)')}</a></td>"
                f"<td>{e(message.job or '')}</td></tr>"
            )
        rows.append("</table></div>")
        parts.append("".join(rows))
    parts.append(
        '<form method=post action="/reset"><button>Reset inbox, stats and faults</button></form>'
    )
    return layout("GPMAS sandbox inbox", "".join(parts))


def _events_table(events: list[dict]) -> str:
    """The delivery events posted to the site (newest first) and its answers: a 400 is the
    site refusing a faulted event, 0 a site that never answered."""
    if not events:
        return '<h2>Events posted</h2><p class="muted">None yet.</p>'
    keys = ["provider", "kind", "recipient", "status", "attempts", "fault"]
    head = "".join(f"<th>{e(k)}</th>" for k in keys)
    rows = "".join(
        "<tr>" + "".join(f"<td>{e(event[k] or '')}</td>" for k in keys) + "</tr>"
        for event in reversed(events[-50:])
    )
    return f"<h2>Events posted</h2><div class=scroll><table><tr>{head}</tr>{rows}</table></div>"


def _stats_table(stats: dict[str, dict[str, int]]) -> str:
    keys = ["calls", "accepted", "rejected", "faulted", "messages", "in_flight"]
    head = "".join(f"<th>{e(k)}</th>" for k in keys)
    rows = "".join(
        f"<tr><th>{e(provider)}</th>"
        + "".join(f"<td>{e(counts.get(k, 0))}</td>" for k in keys)
        + "</tr>"
        for provider, counts in stats.items()
    )
    table = f"<table><tr><th>provider</th>{head}</tr>{rows}</table>"
    return f"<h2>Stats</h2><div class=scroll>{table}</div>"


def _faults_section(faults: dict[str, Fault]) -> str:
    parts = ["<h2>Faults</h2><div class=faults>"]
    for provider in PROVIDERS:
        current = faults.get(provider)
        shown = (
            ", ".join(f"{k}={v}" for k, v in current.to_dict().items() if v != getattr(Fault(), k))
            if current
            else "none"
        )
        parts.append(
            f"<section><h3>{e(provider)}</h3><p>now: <strong>{e(shown or 'none')}</strong></p>"
            f"{_fault_form(provider, current)}</section>"
        )
    parts.append("</div>")
    return "".join(parts)


# (field, label, unit, step): the label beside its box, the unit after it.
_FAULT_FIELDS = (
    ("status", "HTTP status", "e.g. 503", "1"),
    ("error_percent", "Error rate", "% of calls", "1"),
    ("latency_ms", "Latency", "ms", "1"),
    ("hang_seconds", "Hang for", "s", "0.1"),
    ("retry_after", "Retry-After", "s", "1"),
)


def _fault_form(provider: str, current: Fault | None) -> str:
    f = current or Fault()
    values = {**f.to_dict(), "error_percent": round(f.error_rate * 100, 2) or ""}
    rows = []
    for name, label, unit, step in _FAULT_FIELDS:
        value = values[name]
        shown = "" if value is None else e(value)
        rows.append(
            f'<label for="{provider}-{name}">{e(label)}</label>'
            f'<input type=number id="{provider}-{name}" name="{name}" step="{step}" min=0'
            f' value="{shown}"><span class=muted>{e(unit)}</span>'
        )
        if name == "status":
            rows.append(
                f'<label for="{provider}-code">Error code</label>'
                f'<input type=text id="{provider}-code" name=code value="{e(f.code or "")}">'
                "<span class=muted>provider's</span>"
            )
    for name, label in (("hang", "Hang (no answer)"), ("outage", "Outage (refuse)")):
        state = " checked" if getattr(f, name) else ""
        rows.append(
            f'<label for="{provider}-{name}">{label}</label>'
            f'<input type=checkbox id="{provider}-{name}" name={name}{state}><span></span>'
        )
    if provider != "smtp":  # SMTP posts no events
        rows.append(_webhook_select(provider, f.webhook))
    return (
        '<form class=fault method=post action="/faults">'
        f'<input type=hidden name=provider value="{e(provider)}">'
        + "".join(rows)
        + "<div class=buttons><button name=action value=set>set</button>"
        "<button name=action value=clear>clear</button></div></form>"
    )


def _webhook_select(provider: str, current: str | None) -> str:
    options = "".join(
        f'<option value="{e(value)}"{" selected" if value == (current or "") else ""}>'
        f"{e(value.replace('_', ' ') or 'none')}</option>"
        for value in ("", *WEBHOOK_FAULTS)
    )
    return (
        f'<label for="{provider}-webhook">Its events</label>'
        f'<select id="{provider}-webhook" name=webhook>{options}</select>'
        "<span></span>"  # the options say what each does; a hint here would widen the form
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
    parts.append(_html_preview(message.html) if message.html else "<p class=muted>none</p>")
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


def _html_preview(html: str) -> str:
    # No allow-scripts: the message's scripts never run. Links open in a new tab.
    # Long words (a link's URL) wrap instead of running past the box's right edge.
    document = '<base target="_blank"><style>html{overflow-wrap:anywhere}</style>' + html
    return (
        "<p class=muted>Drag the bottom edge of the box to see more.</p><div class=preview>"
        '<iframe sandbox="allow-popups allow-popups-to-escape-sandbox" title="HTML part" '
        f'referrerpolicy="no-referrer" srcdoc="{e(document)}"></iframe></div>'
    )


def render_not_found(what: str) -> str:
    return layout("not found", f'<p>{e(what)} not found.</p><p><a href="/">inbox</a></p>')
