"""Session-wide test settings: the compile cache of `needlec run` lives in a temporary folder, never in ~/.cache."""
from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _compile_cache_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point NEEDLEC_CACHE_DIR at a fresh folder (subprocesses inherit it); tests may point it elsewhere."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEEDLEC_CACHE_DIR", str(tmp_path_factory.mktemp("needlec-cache")))
        yield
