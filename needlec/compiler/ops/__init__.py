"""Importing this package registers every primitive op (see ``registry``)."""
from needlec.compiler.ops import elementwise, views  # noqa: F401
