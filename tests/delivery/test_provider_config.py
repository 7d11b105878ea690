import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from delivery.models import Provider
from delivery.providers import ProviderConfigError, build_adapter, secret_variable

pytestmark = pytest.mark.django_db


def test_secret_variables_are_named_after_the_provider():
    assert secret_variable("eu-sendgrid", "API_KEY") == "GPMAS_PROVIDER_EU_SENDGRID_API_KEY"


def test_a_missing_secret_is_a_clear_validation_error(monkeypatch):
    monkeypatch.delenv("GPMAS_PROVIDER_SG_API_KEY", raising=False)
    provider = Provider(name="sg", kind="sendgrid")
    with pytest.raises(ValidationError) as caught:
        provider.full_clean()
    assert "GPMAS_PROVIDER_SG_API_KEY" in str(caught.value)
    with pytest.raises(ProviderConfigError, match="GPMAS_PROVIDER_SG_API_KEY"):
        build_adapter(provider)


def test_a_provider_with_its_secret_in_the_environment_validates(monkeypatch):
    monkeypatch.setenv("GPMAS_PROVIDER_SG_API_KEY", "k")
    Provider(name="sg", kind="sendgrid").full_clean()


def test_an_unknown_kind_is_refused_by_validation_and_by_the_database():
    with pytest.raises(ValidationError) as caught:
        Provider(name="x", kind="pigeon").full_clean()
    assert "kind" in caught.value.message_dict
    with pytest.raises(IntegrityError), transaction.atomic():
        Provider.objects.create(name="x", kind="pigeon")
    with pytest.raises(ProviderConfigError, match="unknown provider kind 'pigeon'"):
        build_adapter(Provider(name="x", kind="pigeon"))


def test_mailgun_needs_a_domain_and_smtp_a_host(monkeypatch):
    monkeypatch.setenv("GPMAS_PROVIDER_MG_API_KEY", "k")
    with pytest.raises(ValidationError) as caught:
        Provider(name="mg", kind="mailgun").full_clean()
    assert "domain" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        Provider(name="relay", kind="smtp").full_clean()
    assert "host" in caught.value.message_dict


def test_a_bad_quota_time_zone_is_refused(monkeypatch):
    with pytest.raises(ValidationError) as caught:
        Provider(name="c", kind="console", quota_reset_tz="Mars/Olympus").full_clean()
    assert "quota_reset_tz" in caught.value.message_dict


def test_admin_add_form_refuses_a_provider_without_its_secret(admin_client, monkeypatch):
    monkeypatch.delenv("GPMAS_PROVIDER_SES_EU_ACCESS_KEY_ID", raising=False)
    response = admin_client.post(
        reverse("admin:delivery_provider_add"),
        {"name": "ses-eu", "kind": "ses", "enabled": "on", "weight": "1", "quota_reset_tz": "UTC"},
    )
    assert response.status_code == 200
    assert b"GPMAS_PROVIDER_SES_EU_ACCESS_KEY_ID" in response.content
    assert not Provider.objects.exists()


def test_admin_shows_secret_names_and_state_but_never_values(admin_client, monkeypatch):
    monkeypatch.setenv("GPMAS_PROVIDER_SG_API_KEY", "super-secret-value")
    provider = Provider.objects.create(name="sg", kind="sendgrid")
    response = admin_client.get(reverse("admin:delivery_provider_change", args=[provider.pk]))
    assert b"GPMAS_PROVIDER_SG_API_KEY (set)" in response.content
    assert b"super-secret-value" not in response.content
