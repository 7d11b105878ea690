"""The providers' events and the suppression list in the admin (``delivery.admin`` loads this).
Events and the audit log are read-only; a suppression can only be lifted, and every lift is
audited (``delivery.suppression.lift``), as the halt switch's changes are."""

from django.contrib import admin, messages
from django.db.models import Q
from django.utils import timezone

from delivery import suppression
from delivery.models import DeliveryEvent, Suppression, SuppressionAudit, Unsubscribe
from reliability.admin import ReadOnlyAdmin


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "provider_kind", "kind", "outcome", "recipient", "job"]
    list_filter = ["provider_kind", "kind", "outcome", ("job", admin.EmptyFieldListFilter)]
    search_fields = ["recipient", "event_id", "provider_message_id"]
    list_select_related = ["job"]
    date_hierarchy = "received_at"


class SuppressionStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "active"), ("expired", "expired"), ("lifted", "lifted")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(pk__in=suppression.active(now=now).values("pk"))
        if self.value() == "expired":
            return queryset.filter(lifted_at__isnull=True, expires_at__lte=now)
        if self.value() == "lifted":
            return queryset.filter(lifted_at__isnull=False)
        return queryset


@admin.register(Suppression)
class SuppressionAdmin(ReadOnlyAdmin):
    list_display = [
        "address",
        "reason",
        "source_event",
        "created_at",
        "expires_at",
        "lifted_at",
        "lifted_by",
    ]
    list_filter = [SuppressionStateFilter, "reason"]
    search_fields = ["address"]
    list_select_related = ["source_event", "lifted_by"]
    actions = ["lift"]

    def has_change_permission(self, request, obj=None):
        # Lifting needs "change"; the form itself stays read-only.
        return request.user.has_perm("delivery.change_suppression")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Suppression._meta.fields]

    @admin.action(description="Lift (the address gets email again; audited)")
    def lift(self, request, queryset):
        count = suppression.lift(
            queryset.filter(Q(lifted_at__isnull=True)),
            by=request.user,
            source=f"admin from {request.META.get('REMOTE_ADDR', 'unknown')}",
            reason=f"lifted by {request.user.get_username()} in the admin",
        )
        self.message_user(request, f"Lifted {count} suppression(s).", messages.SUCCESS)


@admin.register(SuppressionAudit)
class SuppressionAuditAdmin(ReadOnlyAdmin):
    list_display = ["at", "action", "address", "reason", "changed_by", "source"]
    list_filter = ["action"]
    search_fields = ["address"]
    list_select_related = ["changed_by"]


@admin.register(Unsubscribe)
class UnsubscribeAdmin(ReadOnlyAdmin):
    """The one-click unsubscribes (delivery/unsubscribe.py), per organizer."""

    list_display = ["address", "organizer", "source", "created_at"]
    list_filter = ["source"]
    search_fields = ["address", "organizer__username", "organizer__email"]
    list_select_related = ["organizer"]
