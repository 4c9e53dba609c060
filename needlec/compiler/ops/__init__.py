"""Importing this package registers every primitive op (see ``registry``)."""
from needlec.compiler.ops import (elementwise, convert, views, data, random, reduce, linalg, window,  # noqa: F401
                                  conv, sort, scan)
