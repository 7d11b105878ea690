import pytest
from django.conf import settings

from gpmas import celery_app


def test_celery_follows_the_reliability_rules():
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_ignore_result is True
    assert conf.result_backend is None
    # Cancelling a send mid-call on a broker blip would resend it; a redelivery is a no-op.
    assert conf.worker_cancel_long_running_tasks_on_connection_loss is False


def test_time_limits_stay_below_the_lease_and_the_lease_below_visibility():
    conf = celery_app.conf
    assert conf.task_soft_time_limit < conf.task_time_limit < settings.GPMAS_JOB_LEASE_SECONDS
    assert conf.broker_transport_options["visibility_timeout"] > settings.GPMAS_JOB_LEASE_SECONDS


def test_broker_keys_live_under_the_project_prefix():
    prefix = conf_prefix = celery_app.conf.broker_transport_options["global_keyprefix"]
    assert conf_prefix.startswith(settings.REDIS_KEY_PREFIX)
    assert prefix.endswith(":")


def test_beat_schedules_only_registered_tasks():
    celery_app.loader.import_default_modules()
    for entry in celery_app.conf.beat_schedule.values():
        assert entry["task"] in celery_app.tasks


@pytest.mark.django_db
def test_a_task_run_inline_leaves_its_callers_connection_alone(django_user_model):
    from delivery.tasks import send_jobs

    django_user_model.objects.create_user("ann", "ann@example.com", "pw-ann-1")
    send_jobs.apply(args=[[]])  # inline, inside this test's transaction
    # Closing the connection here would have broken the caller's transaction.
    assert django_user_model.objects.filter(username="ann").exists()
