import pytest
import redis
from django.conf import settings


@pytest.fixture(scope="session")
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def delete_own_keys(client: redis.Redis) -> None:
    """Delete only the keys of this test run (the run's prefix), never anyone else's."""
    for key in client.scan_iter(match=f"*{settings.REDIS_KEY_PREFIX}*", count=1000):
        client.delete(key)


@pytest.fixture(autouse=True)
def _own_redis_keys_are_cleared(redis_client):
    yield
    delete_own_keys(redis_client)


@pytest.fixture
def organizer(django_user_model):
    return django_user_model.objects.create_user("olivia", "olivia@example.com", "pw-olivia-1")


@pytest.fixture
def outsider(django_user_model):
    return django_user_model.objects.create_user("oscar", "oscar@example.com", "pw-oscar-1")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` need real row locks and concurrent writers: skip them on SQLite."""
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL); SQLite has no row locks")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)
