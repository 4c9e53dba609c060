"""ONNX op converters, one module per family; importing this package registers them all."""
from needlec.frontend.onnx.converters import elementwise  # noqa: F401
from needlec.frontend.onnx.converters import math  # noqa: F401
from needlec.frontend.onnx.converters import attention  # noqa: F401
from needlec.frontend.onnx.converters import sequence  # noqa: F401
from needlec.frontend.onnx.converters import tensor  # noqa: F401
from needlec.frontend.onnx.converters import indexing  # noqa: F401
from needlec.frontend.onnx.converters import conv  # noqa: F401
from needlec.frontend.onnx.converters import pool  # noqa: F401
from needlec.frontend.onnx.converters import resize  # noqa: F401
from needlec.frontend.onnx.converters import norm  # noqa: F401
from needlec.frontend.onnx.converters import rnn  # noqa: F401
from needlec.frontend.onnx.converters import sampling  # noqa: F401
from needlec.frontend.onnx.converters import selection  # noqa: F401
from needlec.frontend.onnx.converters import signal  # noqa: F401
from needlec.frontend.onnx.converters import quant  # noqa: F401
from needlec.frontend.onnx.converters import training  # noqa: F401
from needlec.frontend.onnx.converters import control  # noqa: F401
