"""The demo's tests start fresh processes with the fixtures of the project's own."""

from tests.parity.conftest import app_env, run_python  # noqa: F401  (fixtures)
