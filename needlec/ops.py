"""``needlec.ops``: the traced op API (``needlec.ops.relu(x)``); see ``needlec.frontend.functional``."""
from needlec.frontend.functional import *  # noqa: F401,F403
from needlec.frontend.functional import __all__  # noqa: F401
