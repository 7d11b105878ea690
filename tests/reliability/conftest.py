from tests.delivery.conftest import (  # noqa: F401 - shared fixtures
    clean_sandbox,
    providers,
    providers_in_fixed_order,
    sandbox,
    sandbox_env,
)
