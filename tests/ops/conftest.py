# The sandbox provider fixtures live beside the delivery tests, and pytest only sees fixtures from
# conftests above a test. Not pytest_plugins: in a conftest below tests/ it breaks a full run.
from tests.delivery.conftest import clean_sandbox, providers, sandbox, sandbox_env  # noqa: F401
