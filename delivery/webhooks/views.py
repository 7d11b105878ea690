"""``POST /webhooks/<provider>/tracking/``: one tracking webhook per provider kind, anymail's
tracking views behind our own checks (docs/architecture.md, "Delivery events").

In order: the provider must be one we mount and its secrets set (else 403); basic auth, as
anymail checks it, before anything else (else 400: an unauthenticated client must not make the
site fetch an SNS certificate); the signed timestamp must be inside the replay window
(``replay``, else 400); then anymail checks the provider's signature and parses the body (a
refusal or a body it cannot parse: 400); its ``tracking`` signal writes the events (``events``),
all of one request in one transaction, which a Mailgun token reused for another event rolls
back (400).
Bad input gets a 4xx and changes nothing; only a failure while writing (the database) is a 500,
which makes the provider post the events again later.
"""

from __future__ import annotations

import contextvars
import logging
import warnings

import requests
from anymail.exceptions import AnymailNotSupportedWarning
from anymail.utils import get_anymail_setting, get_request_basic_auth
from anymail.webhooks.amazon_ses import AmazonSESTrackingWebhookView
from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from django.db import DataError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt

from delivery.event_wait import WEBHOOK_KEY, missing_webhook_settings
from delivery.webhooks import events, replay, sns

log = logging.getLogger(__name__)
# anymail warns on every SendGrid view it builds that it no longer tests SendGrid itself; the
# signed event webhook it verifies is tested here (tests/delivery/webhooks/).
warnings.filterwarnings("ignore", category=AnymailNotSupportedWarning)

# URL name -> (our provider kind, anymail's view, the setting its signature check needs: an
# ANYMAIL key, or a Django setting)
PROVIDERS = {
    "sendgrid": (
        "sendgrid",
        SendGridTrackingWebhookView.as_view(),
        WEBHOOK_KEY["sendgrid"],
    ),
    "mailgun": ("mailgun", MailgunTrackingWebhookView.as_view(), WEBHOOK_KEY["mailgun"]),
    # anymail does not verify SNS signatures: delivery.webhooks.sns does, before it.
    "amazon_ses": ("ses", AmazonSESTrackingWebhookView.as_view(), WEBHOOK_KEY["ses"]),
}


@csrf_exempt
def tracking_webhook(request: HttpRequest, provider: str) -> HttpResponse:
    if provider not in PROVIDERS:
        raise Http404("no such webhook")
    kind, view, key_setting = PROVIDERS[provider]
    if request.method != "POST":
        return view(request)  # HEAD answers 200 (providers probe the URL), GET 405
    missing = missing_webhook_settings(key_setting)
    if missing:
        log.error("%s webhook refused: %s not configured", provider, ", ".join(missing))
        return HttpResponse("webhook not configured\n", status=403, content_type="text/plain")
    if not basic_auth_ok(request):
        return _refused(provider, "missing or invalid basic auth")
    try:
        replay.check_fresh(kind, request)
        sns_message = sns.verify(request.body) if kind == "ses" else None
    except (replay.Stale, sns.Refused) as exc:
        return _refused(provider, str(exc))
    context = contextvars.copy_context()
    response = context.run(_hand_to_anymail, provider, kind, view, request)
    if sns_message and response.status_code == 200:
        return _confirm_if_asked(sns_message, response)
    return response


def basic_auth_ok(request: HttpRequest) -> bool:
    """anymail's basic-auth check (the same secrets, compared in constant time), run before the
    SNS signature check, which may fetch a certificate; anymail runs its own again later."""
    given = get_request_basic_auth(request)
    allowed = get_anymail_setting("webhook_secret", default=[])
    return given is not None and any(constant_time_compare(given, pair) for pair in allowed)


def _confirm_if_asked(message: dict, response: HttpResponse) -> HttpResponse:
    """A verified, authenticated subscription confirmation for an allowed topic: confirm it."""
    if message.get("Type") != "SubscriptionConfirmation":
        return response
    try:
        sns.confirm_subscription(message)
    except sns.Refused as exc:
        return _refused("amazon_ses", str(exc))
    except requests.RequestException as exc:
        log.error("could not confirm the SNS subscription to %s: %s", message["TopicArn"], exc)
        return HttpResponse("could not confirm\n", status=502, content_type="text/plain")
    log.info("confirmed the SNS subscription to %s", message["TopicArn"])
    return response


def _hand_to_anymail(provider: str, kind: str, view, request: HttpRequest) -> HttpResponse:
    answered = False
    try:
        with transaction.atomic():
            response = view(request)
            answered = True
            if response.status_code == 200:  # signature verified: a token is worth keeping
                replay.check_token(kind, request)
            return response
    except replay.Reused as exc:  # the transaction rolled back: the events are not written
        return _refused(provider, str(exc))
    except DataError as exc:  # a value the database cannot hold: the body's fault
        return _refused(provider, str(exc))
    except Exception as exc:
        # Before the first event is handed to us, anything raised is anymail failing on the body
        # (an AttributeError or OverflowError as much as a ValueError): 400, not a retry. Once
        # writing, or after anymail answered (the token cache), it is ours: 500, posted again.
        if answered or events.writing.get():
            raise
        return _refused(provider, f"{type(exc).__name__}: {exc}")


def _refused(provider: str, reason: str) -> HttpResponse:
    log.warning("%s webhook refused: %s", provider, reason[:300])
    return HttpResponse("refused\n", status=400, content_type="text/plain")
