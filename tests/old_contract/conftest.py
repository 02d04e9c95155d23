"""The HTTP service fixtures of tests/server, for rendering old-contract plugins through it."""
from tests.server.conftest import make_service, registry  # noqa: F401  (fixtures)
