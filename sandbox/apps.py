from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """The provider emulators as a Django app: only for ``manage.py sandbox``; no models."""

    name = "sandbox"
    verbose_name = "Provider sandbox (development and tests)"
