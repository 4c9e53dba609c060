"""The tracing frontend: symbolic ``Tensor``s, the op API, ``nn`` Modules and ``trace``.

``needlec.ops`` and ``needlec.nn`` re-export ``tensor_ops`` and ``nn`` from here.
"""
