from tests.delivery.conftest import clean_sandbox, providers, sandbox, sandbox_env  # noqa: F401
