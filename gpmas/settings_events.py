"""Settings of the delivery events (docs/architecture.md, "Delivery events"), read by
``gpmas.settings``; every variable is in the README's configuration table."""

from gpmas.env import ConfigError, env_bool, env_int, env_list, env_str

# The providers' tracking webhooks, /webhooks/<sendgrid|mailgun|amazon_ses>/tracking/. Secrets
# only from the environment; a webhook whose secrets are unset refuses every post (403).
ANYMAIL = {
    # Basic-auth "user:password" pairs, comma-separated (so no secret may contain a comma):
    # several are accepted, for rotation.
    "WEBHOOK_SECRET": env_list("GPMAS_WEBHOOK_SECRETS", []),
    "MAILGUN_WEBHOOK_SIGNING_KEY": env_str("GPMAS_MAILGUN_WEBHOOK_SIGNING_KEY"),
    # SendGrid's Signed Event Webhook public key, as SendGrid shows it (base64, no PEM lines).
    "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": env_str(
        "GPMAS_SENDGRID_WEBHOOK_VERIFICATION_KEY"
    ),
    # delivery.webhooks.sns confirms subscriptions itself, after verifying them.
    "AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": False,
}
# The SNS topics (ARNs, comma-separated) whose SES events are taken; others are refused.
GPMAS_SES_SNS_TOPIC_ARNS = env_list("GPMAS_SES_SNS_TOPIC_ARNS", [])
# Signed timestamps older (or further ahead) than this are refused as replays.
GPMAS_WEBHOOK_MAX_AGE_SECONDS = env_int("GPMAS_WEBHOOK_MAX_AGE_SECONDS", 600, minimum=1)
# SNS keeps a notification's signed Timestamp (its publication) on every retry, and retries an
# HTTPS endpoint for up to an hour: the window is that hour plus the 10 minutes of the others.
GPMAS_SNS_MAX_AGE_SECONDS = env_int("GPMAS_SNS_MAX_AGE_SECONDS", 4200, minimum=1)
GPMAS_SOFT_BOUNCES_TO_SUPPRESS = env_int("GPMAS_SOFT_BOUNCES_TO_SUPPRESS", 3, minimum=1)
# How long a suppression lasts, in days; 0 = until lifted by hand.
GPMAS_BOUNCE_SUPPRESSION_DAYS = env_int("GPMAS_BOUNCE_SUPPRESSION_DAYS", 30, minimum=0)
GPMAS_COMPLAINT_SUPPRESSION_DAYS = env_int("GPMAS_COMPLAINT_SUPPRESSION_DAYS", 0, minimum=0)
# A call whose outcome is unknown, at a provider whose webhook is configured, is not retried for
# this long: an event for it meanwhile marks it sent without a second call (delivery.event_wait).
# 0 = retry after the usual backoff, as for a provider that posts no events.
GPMAS_EVENT_WAIT_SECONDS = env_int("GPMAS_EVENT_WAIT_SECONDS", 600, minimum=0)
# Development only: the one signing-certificate URL trusted besides SNS's own hosts, where the
# sandbox (which plays SNS in ./dev up and the tests) serves its certificate. Refused at start-up
# unless DEBUG is on, and ignored unless DEBUG is on, so production can never trust it.
GPMAS_SANDBOX_SNS_CERT_URL = env_str("GPMAS_SANDBOX_SNS_CERT_URL").strip()
if GPMAS_SANDBOX_SNS_CERT_URL and not env_bool("DEBUG", False):
    raise ConfigError("GPMAS_SANDBOX_SNS_CERT_URL", "is for development only and needs DEBUG=1")
