"""The site side of the sandbox's delivery events, for tests: settings that make the site accept
what the sandbox signs (as ``./dev up`` configures it), and a sandbox ``Post`` made through
Django's test client to the real webhook view."""

from __future__ import annotations

import base64

from delivery.webhooks import sns
from sandbox.webhook_events import Post
from sandbox.webhook_keys import SNS_CERT_PATH, WebhookKeys, site_environment

SECRET = "sandbox:webhook-secret-for-tests"
KEYS = WebhookKeys.generate()


def configure_site(settings, sandbox_http_url: str, keys: WebhookKeys = KEYS) -> None:
    """What ``site_environment`` puts in the environment, as settings of this process."""
    env = site_environment(keys, secret=SECRET, sandbox_http_url=sandbox_http_url)
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": [env["GPMAS_WEBHOOK_SECRETS"]],
        "MAILGUN_WEBHOOK_SIGNING_KEY": env["GPMAS_MAILGUN_WEBHOOK_SIGNING_KEY"],
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": env[
            "GPMAS_SENDGRID_WEBHOOK_VERIFICATION_KEY"
        ],
        "AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": False,
    }
    settings.GPMAS_SES_SNS_TOPIC_ARNS = [env["GPMAS_SES_SNS_TOPIC_ARNS"]]
    settings.GPMAS_SANDBOX_SNS_CERT_URL = sandbox_http_url + SNS_CERT_PATH
    settings.DEBUG = True  # the sandbox's SNS certificate is trusted in development only
    sns._certificate.cache_clear()


def deliver(client, post: Post, *, secret: str = SECRET):
    """``post`` as the sandbox's poster makes it, through the test client."""
    meta = {
        "HTTP_" + name.upper().replace("-", "_"): value
        for name, value in post.headers.items()
        if name.lower() != "content-type"
    }
    token = base64.b64encode(secret.encode()).decode()
    return client.post(
        post.path,
        data=post.body,
        content_type=post.headers["Content-Type"],
        HTTP_AUTHORIZATION=f"Basic {token}",
        **meta,
    )
