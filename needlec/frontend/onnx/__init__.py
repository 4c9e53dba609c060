"""ONNX in: ``from_onnx`` imports a model into the graph IR (``needlec.onnx_backend`` drives it from ONNX tools)."""
from needlec.frontend.onnx.context import OnnxImportError
from needlec.frontend.onnx.importer import from_onnx
from needlec.frontend.onnx.loader import load_model

__all__ = ["OnnxImportError", "from_onnx", "load_model"]
