"""``needlec.ops``: the traced op API (``needlec.ops.relu(x)``), layer-level ops and losses.

Re-exports ``needlec.frontend.tensor_ops`` (primitives and basic composites),
``needlec.frontend.nn.functional`` (gelu, layer_norm, dropout, ...) and
``needlec.frontend.losses`` (cross_entropy, mse_loss, ...).
"""
from needlec.frontend.tensor_ops import *  # noqa: F401,F403
from needlec.frontend.tensor_ops import __all__ as _core
from needlec.frontend.losses import *  # noqa: F401,F403
from needlec.frontend.losses import __all__ as _losses
from needlec.frontend.nn.functional import *  # noqa: F401,F403
from needlec.frontend.nn.functional import __all__ as _layers

__all__ = [*_core, *_layers, *_losses]
