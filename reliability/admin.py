"""The halt switch in the admin: one page with a clear Halt / Resume control and the audit log."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from reliability import halt
from reliability.models import HaltAudit, SystemControl


class HaltForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Required for a halt; recorded in the audit log.",
    )


@admin.register(SystemControl)
class SystemControlAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path(
                "",
                self.admin_site.admin_view(self.control_view),
                name="reliability_systemcontrol_changelist",
            ),
            path(
                "<path:object_id>/change/",
                self.admin_site.admin_view(
                    lambda request, object_id: redirect(
                        "admin:reliability_systemcontrol_changelist"
                    )
                ),
                name="reliability_systemcontrol_change",
            ),
        ]

    def control_view(self, request):
        if not self.has_view_permission(request):
            return redirect("admin:index")
        control = halt.current()
        form = HaltForm(request.POST or None)
        if not control.halted:
            form.fields["reason"].required = True
        else:
            form.fields["reason"].required = False
            form.fields["reason"].help_text = "Optional for a resume; recorded in the audit log."
        if request.method == "POST" and self.has_change_permission(request) and form.is_valid():
            source = f"admin from {request.META.get('REMOTE_ADDR', 'unknown')}"
            try:
                if control.halted:
                    halt.system_resume(
                        reason=form.cleaned_data["reason"], by=request.user, source=source
                    )
                    self.message_user(request, "Sending resumed; the drain runs now.")
                else:
                    halt.system_halt(
                        reason=form.cleaned_data["reason"], by=request.user, source=source
                    )
                    self.message_user(request, "All sending is halted.", messages.WARNING)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return redirect("admin:reliability_systemcontrol_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Halt switch",
            "opts": self.model._meta,
            "control": control,
            "form": form,
            "can_change": self.has_change_permission(request),
            "audit": HaltAudit.objects.select_related("changed_by")[:50],
            "audit_url": reverse("admin:reliability_haltaudit_changelist"),
        }
        return TemplateResponse(request, "admin/reliability/halt_switch.html", context)


class ReadOnlyAdmin(admin.ModelAdmin):
    """For logs: rows are looked at, never added, changed or deleted in the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(HaltAudit)
class HaltAuditAdmin(ReadOnlyAdmin):
    list_display = ["at", "action", "reason", "changed_by", "source"]
    list_filter = ["action"]
    list_select_related = ["changed_by"]
