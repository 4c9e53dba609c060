"""Session-wide test settings: the compile cache of `needlec run` lives in a temporary folder, never in ~/.cache,
and compiled models run their parallel loops on one thread unless a test asks for more (pytest-xdist already
runs one worker per core: more threads would only oversubscribe the cores; tests/test_threads.py sets counts)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _test_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point NEEDLEC_CACHE_DIR at a fresh folder and NEEDLEC_NUM_THREADS at 1 (subprocesses inherit both)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEEDLEC_CACHE_DIR", str(tmp_path_factory.mktemp("needlec-cache")))
        patch.setenv("NEEDLEC_NUM_THREADS", "1")
        yield
