import redis
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime

from delivery import event_admin, provider_state, selectors, services
from delivery.models import DeliveryAttempt, EmailJob, Provider
from delivery.providers import adapter_class, secret_variable
from reliability.admin import ReadOnlyAdmin

__all__ = ["event_admin"]  # registers the events' and the suppression list's admin


def shortened(text: str, length: int) -> str:
    """At most ``length`` characters; the whole text in the tooltip when cut."""
    if len(text) <= length:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[: length - 1])


def short_time(moment) -> str:
    """ "Dec 02 14:05" in the current time zone, "–" when unset."""
    return localtime(moment).strftime("%b %d %H:%M") if moment else "–"


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["started_at", "provider", "outcome", "error_code", "error_message", "duration_ms"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(EmailJob)
class EmailJobAdmin(ReadOnlyAdmin):
    # Short columns, so that the list fits 1,280 px beside the filters (the full values are on
    # each job's page, and in the cell's tooltip).
    list_display = [
        "id",
        "kind",
        "recipient",
        "short_subject",
        "status",
        "delivery_state",
        "tries",
        "provider",
        "due",
        "created",
    ]
    list_filter = ["status", "delivery_state", "kind", "provider"]
    search_fields = ["to_email", "subject", "topic", "idempotency_key", "provider_message_id"]
    list_select_related = ["provider"]
    inlines = [DeliveryAttemptInline]
    actions = ["retry_now", "cancel"]
    date_hierarchy = "created_at"

    def changelist_view(self, request, extra_context=None):
        # The app list beside it would squeeze the table: this list is reached from the index.
        return super().changelist_view(
            request, {"is_nav_sidebar_enabled": False, **(extra_context or {})}
        )

    @admin.display(description="to", ordering="to_email")
    def recipient(self, job):
        return shortened(job.to_email, 32)

    @admin.display(description="subject", ordering="subject")
    def short_subject(self, job):
        return shortened(job.subject, 40)

    @admin.display(description="tries", ordering="attempts")
    def tries(self, job):
        return job.attempts

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def due(self, job):
        return short_time(job.next_attempt_at)

    @admin.display(description="created", ordering="created_at")
    def created(self, job):
        return short_time(job.created_at)

    def has_change_permission(self, request, obj=None):
        # Viewing a job (and running actions) needs "change"; the form itself is read-only.
        return request.user.has_perm("delivery.change_emailjob")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in EmailJob._meta.fields]

    @admin.action(description="Retry now (waiting jobs become due; failed jobs get a new copy)")
    def retry_now(self, request, queryset):
        with transaction.atomic():
            count = services.email_jobs_retry_now(
                job_ids=list(queryset.values_list("pk", flat=True))
            )
        self.message_user(request, f"{count} job(s) queued to send now.", messages.SUCCESS)

    @admin.action(description="Cancel (waiting jobs only; sending and finished jobs are kept)")
    def cancel(self, request, queryset):
        count = services.email_jobs_cancel_by_id(
            job_ids=list(queryset.values_list("pk", flat=True)),
            reason=f"cancelled by {request.user.get_username()} in the admin",
        )
        self.message_user(request, f"{count} job(s) cancelled.", messages.SUCCESS)


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = [
        "name",
        "kind",
        "enabled",
        "weight",
        "state",
        "penalty",
        "failures",
        "quota_today",
        "last_error",
        "secrets",
    ]
    list_editable = ["enabled", "weight"]
    actions = ["send_test_email", "reset_state", "disable"]

    def get_changelist_instance(self, request):
        # Live state comes from Redis: read it for the whole page in one round trip.
        changelist = super().get_changelist_instance(request)
        try:
            health = selectors.provider_health(changelist.result_list)
        except redis.RedisError:
            health = []
        for item in health:
            item.provider.live = item
        return changelist

    @admin.display(description="state")
    def state(self, obj: Provider) -> str:
        return obj.live.state if hasattr(obj, "live") else "unknown (Redis down)"

    @admin.display(description="penalty")
    def penalty(self, obj: Provider) -> str:
        return f"{obj.live.view.penalty:.1f}" if hasattr(obj, "live") else "-"

    @admin.display(description="failures in a row")
    def failures(self, obj: Provider) -> str:
        return str(obj.live.view.consecutive_failures) if hasattr(obj, "live") else "-"

    @admin.display(description="quota used today")
    def quota_today(self, obj: Provider) -> str:
        return obj.live.quota if hasattr(obj, "live") else "-"

    @admin.display(description="last error")
    def last_error(self, obj: Provider) -> str:
        return obj.live.view.last_error[:120] if hasattr(obj, "live") else "-"

    @admin.action(description="Reset live state (penalty, circuit, rate-limit block)")
    def reset_state(self, request, queryset):
        for provider in queryset:
            provider_state.reset(provider)
        self.message_user(request, f"Reset {queryset.count()} provider(s).", messages.SUCCESS)

    @admin.action(description="Disable (no traffic until enabled again)")
    def disable(self, request, queryset):
        count = queryset.update(enabled=False)
        self.message_user(request, f"Disabled {count} provider(s).", messages.SUCCESS)

    readonly_fields = ["secrets", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "enabled", "weight"]}),
        ("Quota", {"fields": ["daily_quota", "quota_reset_tz", "max_per_second"]}),
        (
            "Connection (non-secret)",
            {"fields": ["api_base_url", "region", "domain", "host", "port", "use_tls"]},
        ),
        ("Secrets (from the environment only)", {"fields": ["secrets"]}),
    ]

    @admin.action(description="Send a test email to me through each selected provider")
    def send_test_email(self, request, queryset):
        if not request.user.email:
            self.message_user(request, "Your account has no email address.", messages.ERROR)
            return
        jobs = []
        try:
            for provider in queryset:
                jobs += services.email_enqueue_provider_tests(
                    to_email=request.user.email, provider_name=provider.name
                )
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return
        names = ", ".join(job.pinned_provider.name for job in jobs)
        self.message_user(
            request,
            f"Queued a test email to {request.user.email} through {names}.",
            messages.SUCCESS,
        )

    @admin.display(description="secrets (environment variables)")
    def secrets(self, obj: Provider) -> str:
        """Names the variables and whether they are set; never shows a value."""
        import os

        try:
            cls = adapter_class(obj.kind)
        except Exception:
            return "-"
        names = [
            (secret_variable(obj.name, s), s in cls.required_secrets)
            for s in (*cls.required_secrets, *cls.optional_secrets)
        ]
        if not names:
            return "none needed"
        return format_html_join(
            ", ",
            "{} ({})",
            (
                (name, "set" if os.environ.get(name) else ("MISSING" if required else "not set"))
                for name, required in names
            ),
        )


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "job", "provider", "outcome", "error_code", "duration_ms"]
    list_filter = ["outcome", "provider"]
    list_select_related = ["provider", "job"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("delivery.view_deliveryattempt")
