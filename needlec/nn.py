"""``needlec.nn``: Modules, Parameters and Buffers (``needlec.nn.Linear``); see ``needlec.frontend.nn``."""
from needlec.frontend.nn import *  # noqa: F401,F403
from needlec.frontend.nn import __all__  # noqa: F401
