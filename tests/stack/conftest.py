from __future__ import annotations

import pytest

from services.stack import StackInfo, up


@pytest.fixture(scope="session")
def stack() -> StackInfo:
    """The running local stack; `up()` is a no-op when CI already started it, and starts it otherwise."""
    return up()
