import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def golden():
    """Compare with golden/<name>; PINET_UPDATE_GOLDEN=1 rewrites the file instead."""

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if os.environ.get("PINET_UPDATE_GOLDEN") == "1":
            path.write_text(text)
        assert path.exists(), f"no golden file {path}: run with PINET_UPDATE_GOLDEN=1 and review it"
        assert text == path.read_text()

    return check
