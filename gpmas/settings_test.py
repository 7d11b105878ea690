"""Settings for the test suite: ``gpmas.settings`` plus what tests need.

With DATABASE_URL / REDIS_URL set, tests use those servers: each run gets its own database
(``test_gpmas_<run>``, dropped at the end) and its own Redis key prefix (``gpmas-test-<run>``,
deleted at the end). Without REDIS_URL an embedded redis-server is started for the run; without
DATABASE_URL the run uses a SQLite file, so that worker processes started by tests share it.
"""

import atexit
import os
import tempfile
import uuid
from pathlib import Path

RUN_ID = os.environ.setdefault("GPMAS_TEST_RUN_ID", uuid.uuid4().hex[:8])
os.environ.setdefault("DEBUG", "1")
# Short timings so retry, timeout and lease behaviour is observable within a test. Set in the
# environment, so the settings derived from them (the batch deadline, the latency ceiling, the
# probe timeout) agree, and worker processes the tests start inherit them.
for _name, _value in {
    "GPMAS_BACKOFF_BASE_SECONDS": "0.2",
    "GPMAS_BACKOFF_CAP_SECONDS": "2",
    "GPMAS_PROVIDER_CONNECT_TIMEOUT": "2",
    "GPMAS_PROVIDER_READ_TIMEOUT": "3",
}.items():
    os.environ.setdefault(_name, _value)
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-" + "x" * 40)
os.environ.setdefault("GPMAS_REDIS_PREFIX", f"gpmas-test-{RUN_ID}")
_SCRATCH = Path(tempfile.gettempdir()) / f"gpmas-test-{RUN_ID}"
_SCRATCH.mkdir(parents=True, exist_ok=True)  # the SQLite file lives here without DATABASE_URL
os.environ.setdefault("GPMAS_DATA_DIR", str(_SCRATCH))

if not os.environ.get("REDIS_URL"):
    # Started here, not in a fixture, because pytest-django imports settings before any conftest
    # hook runs, and every worker process a test starts inherits REDIS_URL from this process.
    from gpmas.embedded_redis import EmbeddedRedis

    _embedded_redis = EmbeddedRedis(_SCRATCH / "redis", appendonly=False).start()
    atexit.register(_embedded_redis.stop)
    os.environ["REDIS_URL"] = _embedded_redis.url

from gpmas.settings import *  # noqa: E402,F403
from gpmas.settings import DATABASES  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(_SCRATCH / "test.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_gpmas_{RUN_ID}"}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
