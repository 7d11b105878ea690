import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from reliability import halt
from reliability.models import HaltAudit, SystemControl
from reliability.signals import sending_resumed

pytestmark = pytest.mark.django_db
CONTROL_URL = "admin:reliability_systemcontrol_changelist"


def audit() -> list[tuple[str, str, str]]:
    return list(HaltAudit.objects.order_by("id").values_list("action", "reason", "source"))


def test_a_halt_needs_a_reason_and_changes_nothing_without_one():
    with pytest.raises(ValidationError):
        halt.system_halt(reason="   ", source="test")
    assert not halt.is_halted()
    assert audit() == []


def test_halt_and_resume_are_audited():
    halt.system_halt(reason="bounce storm", source="test")
    assert halt.is_halted()
    halt.system_resume(reason="fixed", source="test")
    assert not halt.is_halted()
    assert audit() == [("halt", "bounce storm", "test"), ("resume", "fixed", "test")]


def test_is_halted_reads_the_switch_as_stored_in_one_query(django_assert_num_queries):
    assert not halt.is_halted()  # no row yet: never halted
    SystemControl.objects.create(pk=1, halted=False)
    with django_assert_num_queries(1):
        assert halt.is_halted() is False
    SystemControl.objects.filter(pk=1).update(halted=True)
    with django_assert_num_queries(1):
        assert halt.is_halted() is True


def test_halting_twice_or_resuming_while_running_is_refused():
    with pytest.raises(ValidationError, match="not halted"):
        halt.system_resume(source="test")
    halt.system_halt(reason="x", source="test")
    with pytest.raises(ValidationError, match="already halted"):
        halt.system_halt(reason="y", source="test")
    assert audit() == [("halt", "x", "test")]


def test_resume_announces_itself_only_after_commit(django_capture_on_commit_callbacks):
    received = []
    sending_resumed.connect(lambda **kw: received.append(1), weak=False, dispatch_uid="t")
    try:
        halt.system_halt(reason="x", source="test")
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            halt.system_resume(source="test")
            assert received == []
        assert received == [1]
        assert len(callbacks) == 1
    finally:
        sending_resumed.disconnect(dispatch_uid="t")


def test_the_command_halts_and_resumes_with_an_audit(capsys):
    call_command("gpmas", "halt", "--reason", "provider incident")
    assert halt.is_halted()
    call_command("gpmas", "resume")
    assert audit() == [("halt", "provider incident", "command"), ("resume", "resumed", "command")]
    out = capsys.readouterr().out
    assert "All sending is halted." in out and "Sending resumed" in out


def test_the_command_refuses_bad_requests_with_one_line():
    with pytest.raises(CommandError, match="Sending is not halted."):
        call_command("gpmas", "resume")
    with pytest.raises(CommandError, match="reason: A halt needs a reason."):
        call_command("gpmas", "halt", "--reason", " ")
    assert audit() == []


def test_the_admin_page_halts_with_a_required_reason(admin_client, admin_user):
    page = admin_client.get(reverse(CONTROL_URL))
    assert b"Halt all sending" in page.content
    refused = admin_client.post(reverse(CONTROL_URL), {"reason": ""})
    assert refused.status_code == 200
    assert b"This field is required." in refused.content
    assert not halt.is_halted()

    admin_client.post(reverse(CONTROL_URL), {"reason": "suspicious volume"})
    control = SystemControl.objects.get(pk=1)
    assert (control.halted, control.reason, control.changed_by) == (
        True,
        "suspicious volume",
        admin_user,
    )
    page = admin_client.get(reverse(CONTROL_URL))
    assert b"Resume sending" in page.content
    assert b"suspicious volume" in page.content

    admin_client.post(reverse(CONTROL_URL), {"reason": ""})  # a resume needs no reason
    assert not halt.is_halted()
    assert audit() == [
        ("halt", "suspicious volume", "admin from 127.0.0.1"),
        ("resume", "resumed", "admin from 127.0.0.1"),
    ]


def test_admin_and_command_halts_behave_the_same(admin_client, providers):
    from tests.delivery.jobs import new_job, send_one

    results = []
    for do_halt in (
        lambda: admin_client.post(reverse(CONTROL_URL), {"reason": "via admin"}),
        lambda: call_command("gpmas", "halt", "--reason", "via command"),
    ):
        do_halt()
        results.append(send_one(new_job()))
        halt.system_resume(source="test")
    assert results == ["halted", "halted"]
    assert [entry[0] for entry in audit()] == ["halt", "resume", "halt", "resume"]


def test_staff_without_change_permission_cannot_flip_the_switch(client, django_user_model):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_systemcontrol"))
    client.force_login(viewer)
    assert client.get(reverse(CONTROL_URL)).status_code == 200
    client.post(reverse(CONTROL_URL), {"reason": "nope"})
    assert not halt.is_halted()


def test_a_get_never_changes_the_switch(admin_client):
    admin_client.get(reverse(CONTROL_URL), {"reason": "from a link"})
    assert not halt.is_halted()


def test_the_admin_header_shows_the_system_state(admin_client, providers):
    assert b"System: <strong>normal</strong>" in admin_client.get(reverse("admin:index")).content
    halt.system_halt(reason="storm", source="test")
    page = admin_client.get(reverse("admin:index")).content
    assert b"System: <strong>halted</strong>" in page
    assert b"All sending is halted: storm." in page


def test_organizers_see_a_banner_while_halted_and_guests_do_not(client, organizer, providers):
    client.force_login(organizer)
    assert b'class="banner"' not in client.get(reverse("dashboard")).content
    halt.system_halt(reason="provider incident", source="test")
    page = client.get(reverse("dashboard")).content.decode()
    # Organizers get one plain sentence; the operator's reason is for staff (issue #17).
    assert "Email sending is paused; your emails will go out automatically" in page
    assert "provider incident" not in page
    client.logout()
    assert "Email sending is" not in client.get(reverse("login")).content.decode()
