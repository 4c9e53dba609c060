"""ONNX op converters, one module per family; importing this package registers them all."""
from needlec.frontend.onnx.ops import elementwise  # noqa: F401
from needlec.frontend.onnx.ops import math  # noqa: F401
from needlec.frontend.onnx.ops import attention  # noqa: F401
from needlec.frontend.onnx.ops import sequence  # noqa: F401
from needlec.frontend.onnx.ops import tensor  # noqa: F401
from needlec.frontend.onnx.ops import indexing  # noqa: F401
from needlec.frontend.onnx.ops import conv  # noqa: F401
from needlec.frontend.onnx.ops import pool  # noqa: F401
from needlec.frontend.onnx.ops import resize  # noqa: F401
from needlec.frontend.onnx.ops import norm  # noqa: F401
from needlec.frontend.onnx.ops import rnn  # noqa: F401
from needlec.frontend.onnx.ops import sampling  # noqa: F401
from needlec.frontend.onnx.ops import selection  # noqa: F401
from needlec.frontend.onnx.ops import signal  # noqa: F401
from needlec.frontend.onnx.ops import quant  # noqa: F401
from needlec.frontend.onnx.ops import training  # noqa: F401
from needlec.frontend.onnx.ops import control  # noqa: F401
