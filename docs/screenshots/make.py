#!/usr/bin/env python3
"""Screenshots of the main pages at 390 and 1280 px wide, into docs/screenshots/ (linked from
README.md). Run it again whenever a page changes:

    .venv/bin/python docs/screenshots/make.py                 # every page, both widths
    .venv/bin/python docs/screenshots/make.py --list          # the pages, and who sees them
    .venv/bin/python docs/screenshots/make.py --only login --width 390 --out /tmp/shots

It starts a stack of its own in a temporary directory, on free ports, and leaves nothing
behind: SQLite, an embedded redis-server, the sandbox providers (in this process) and the web
app (runserver). It seeds the demo organizer and admin, an event with guests whose invitations
are delivered to the sandbox, and a provider failing (for the health page's early warning);
then Debian's Chromium, driven by Playwright, signs in and captures each page.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
WIDTHS = (390, 1280)
MAX_HEIGHT = 2400  # long pages are cut here, to keep the images small
SCROLL_TO = """selector => {
  const top = document.querySelector(selector).getBoundingClientRect().top + window.scrollY;
  window.scrollTo(0, Math.max(0, top - 120));
}"""


@dataclass(frozen=True)
class Shot:
    name: str
    who: str  # "guest" (nobody signed in), "organizer", "staff", or "sandbox" (its inbox)
    path: str  # with {event}, {token} or {message} filled in from the seeded data
    # A CSS selector: the shot is one window scrolled to it rather than the whole page (Chromium
    # leaves an iframe blank in a whole-page shot).
    focus: str = ""

    def url(self, web: str, sandbox: str, seeded: dict[str, str]) -> str:
        base = sandbox if self.who == "sandbox" else web
        return base + self.path.format(**seeded)


PAGES = (
    Shot("login", "guest", "/login/"),
    Shot("dashboard", "organizer", "/"),
    Shot("event-new", "organizer", "/events/new/"),
    Shot("event", "organizer", "/events/{event}/"),
    Shot("invite", "organizer", "/events/{event}/invite/"),
    Shot("guest-invitation", "guest", "/i/{token}/"),
    Shot("provider-health", "staff", "/ops/providers/"),
    Shot("admin-email-jobs", "staff", "/admin/delivery/emailjob/"),
    Shot("sandbox-inbox", "sandbox", "/"),
    Shot("sandbox-message", "sandbox", "/messages/{message}", focus=".preview"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"make.py: the web server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"make.py: the web server did not answer on port {port}")


def environment(tmp: Path, web_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPMAS_", "SANDBOX_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="gpmas.settings",
        DEBUG="1",
        GPMAS_DATA_DIR=str(tmp),
        DATABASE_URL=f"sqlite:///{tmp / 'gpmas.sqlite3'}",
        GPMAS_SITE_URL=f"http://127.0.0.1:{web_port}",
        PYTHONUNBUFFERED="1",
    )
    env.pop("CELERY_BROKER_URL", None)
    return env


def set_display_name(user, name: str) -> None:
    """Organizers may be asked for a display name before anything else: give the demo one."""
    from django.apps import apps

    for model in apps.get_models():
        if "display_name" not in {f.name for f in model._meta.get_fields()}:
            continue
        if model is type(user):
            user.display_name = name
            user.save(update_fields=["display_name"])
            return
        for field in model._meta.fields:
            if field.is_relation and field.related_model is type(user):
                defaults = {"display_name": name}
                model.objects.update_or_create(**{field.name: user}, defaults=defaults)
                return


def seed(sandbox) -> dict[str, str]:
    """The demo accounts, an event with three guests (one delivered, one bounced), a failing
    provider."""
    import datetime as dt

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from delivery import dispatch, provider_state, sending
    from delivery.models import DeliveryAttempt, EmailJob
    from events.services import EventFields, event_create
    from gpmas.demo_accounts import DEMO_ORGANIZER
    from invitations.guestlist import Guest
    from sandbox.providers import configure_sandbox_providers

    call_command("migrate", verbosity=0)
    call_command("create_demo_users", stdout=open(os.devnull, "w"))  # noqa: SIM115
    providers = configure_sandbox_providers(
        http_url=sandbox.http_url, smtp_host=sandbox.smtp_host, smtp_port=sandbox.smtp_port
    )
    organizer = get_user_model().objects.get(username=DEMO_ORGANIZER[0])
    set_display_name(organizer, "Olivia Organizer")
    starts = (timezone.now() + dt.timedelta(days=30)).replace(hour=18, minute=0, second=0)
    fields = EventFields(
        title="Garden party",
        starts_at=starts,
        ends_at=starts + dt.timedelta(hours=5),
        timezone="Europe/Berlin",
        description="Bring something for the barbecue. Rain or shine.",
        location="Main Street 1, Berlin",
        capacity=40,
        plus_ones_allowed=1,
    )
    guests = [
        Guest("ann@example.com", "Ann Lee"),
        Guest("bob@example.com", "Bob"),
        Guest("old.address@example.com", "Carl Old"),
    ]
    event, _ = event_create(organizer=organizer, fields=fields, guests=guests)
    dispatch.outbox_drain(publish=lambda ids: sending.jobs_send(job_ids=ids))
    report_outcomes({"ann@example.com": "delivered", "old.address@example.com": "bounced_hard"})
    job = EmailJob.objects.filter(kind="invitation").order_by("pk").first()
    token = re.search(r"/i/([^/\s]+)/", job.text_body).group(1)
    failing = next(p for p in providers if p.kind == "ses")
    for _ in range(3):
        provider_state.record_outcome(
            failing, DeliveryAttempt.Outcome.TRANSIENT, at=provider_state.now(), error="503"
        )
    message = sandbox.inbox.messages()[0].id
    return {"event": str(event.pk), "token": token, "message": message}


def report_outcomes(states: dict[str, str]) -> None:
    """What the providers' webhooks would report for these addresses' invitations (the sandbox
    posts them to a running site; here the site starts later, so they are written as it would)."""
    from django.utils import timezone

    from delivery import delivery_state, suppression
    from delivery.models import EmailJob

    for address, state in states.items():
        job = EmailJob.objects.get(kind="invitation", to_email=address)
        delivery_state.record_delivery_state(job.pk, state, at=timezone.now())
        if state == "bounced_hard":
            suppression.suppress(address, suppression.Reason.HARD_BOUNCE)


def log_in(page, web: str, who: str) -> None:
    from gpmas.demo_accounts import DEMO_ADMIN, DEMO_ORGANIZER

    username, _, password = DEMO_ORGANIZER if who == "organizer" else DEMO_ADMIN
    page.goto(f"{web}/login/" if who == "organizer" else f"{web}/admin/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def capture(shots, widths, out: Path, web: str, sandbox: str, seeded: dict[str, str]) -> list:
    from playwright.sync_api import sync_playwright

    written = []
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        for width in widths:
            pages = {}
            for shot in shots:
                if shot.who not in pages:
                    context = browser.new_context(viewport={"width": width, "height": 900})
                    pages[shot.who] = context.new_page()
                    if shot.who in ("organizer", "staff"):
                        log_in(pages[shot.who], web, shot.who)
                page = pages[shot.who]
                page.goto(shot.url(web, sandbox, seeded))
                page.wait_for_load_state("networkidle")
                path = out / f"{shot.name}-{width}.png"
                if shot.focus:
                    for frame in page.frames[1:]:
                        frame.wait_for_function("document.body && document.body.innerText")
                    page.evaluate(SCROLL_TO, shot.focus)
                    page.screenshot(path=str(path))
                else:
                    height = min(MAX_HEIGHT, page.evaluate("document.documentElement.scrollHeight"))
                    clip = {"x": 0, "y": 0, "width": width, "height": height}
                    page.screenshot(path=str(path), full_page=True, clip=clip)
                written.append(path)
        browser.close()
    return written


def start_web(env: dict[str, str], port: int) -> subprocess.Popen:
    web = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, web)
    return web


def run(shots, widths, out: Path) -> list:
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="gpmas-shots-") as tmp_dir:
        tmp = Path(tmp_dir)
        web_port = free_port()
        env = environment(tmp, web_port)
        from gpmas.embedded_redis import EmbeddedRedis

        redis = EmbeddedRedis(tmp / "redis", free_port(), appendonly=False).start()
        env["REDIS_URL"] = redis.url
        os.environ.clear()
        os.environ.update(env)
        web = None
        try:
            import django

            django.setup()
            from django.db import connections

            from sandbox import Sandbox
            from sandbox.providers import sandbox_secrets

            with Sandbox() as sandbox:
                secrets = sandbox_secrets(
                    api_key=sandbox.api_key,
                    smtp_username=sandbox.smtp_username,
                    smtp_password=sandbox.smtp_password,
                )
                os.environ.update(secrets)
                env.update(secrets)
                seeded = seed(sandbox)
                connections.close_all()
                web = start_web(env, web_port)
                url = f"http://127.0.0.1:{web_port}"
                return capture(shots, widths, out, url, sandbox.http_url, seeded)
        finally:
            if web is not None:
                web.terminate()
                web.wait(timeout=30)
            redis.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the pages and exit")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="this page")
    parser.add_argument("--width", type=int, action="append", choices=WIDTHS, help="this width")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT})")
    args = parser.parse_args(argv)
    if args.list:
        for shot in PAGES:
            print(f"{shot.name:<18} {shot.who:<10} {shot.path}")
        return 0
    unknown = set(args.only) - {shot.name for shot in PAGES}
    if unknown:
        parser.error(f"unknown page(s): {', '.join(sorted(unknown))}; see --list")
    if not CHROMIUM.exists():
        parser.error(f"needs Debian's Chromium at {CHROMIUM} (apt-get install -y chromium)")
    shots = [shot for shot in PAGES if not args.only or shot.name in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    written = run(shots, tuple(args.width or WIDTHS), args.out)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
