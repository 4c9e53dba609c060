"""ONNX op converters, one module per family; importing this package registers them all."""
from needlec.frontend.onnx.ops import elementwise  # noqa: F401
