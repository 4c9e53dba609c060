"""Importing this package registers every primitive op (see ``registry``)."""
from needlec.compiler.ops import elementwise, views, data, random, reduce, linalg, window, conv  # noqa: F401
