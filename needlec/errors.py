"""The needlec error hierarchy: every failure a user can cause is a NeedlecError.

The CLI prints ``str(error)`` on one line and exits non-zero; tracebacks are
shown only with ``--debug``.
"""
from __future__ import annotations


class NeedlecError(Exception):
    """Root of every error needlec raises on purpose."""


class IRError(NeedlecError):
    """Malformed graph IR: bad types, attributes or structure."""


class VerificationError(IRError):
    """The verifier found a broken invariant; the message names node and position."""


class ParseError(IRError):
    """The IR text could not be parsed; the message gives line and column."""


class UnsupportedOpError(NeedlecError):
    """An op is unknown to the registry (or to an importer)."""


class ShapeError(IRError):
    """An op's shape or dtype rule rejected its inputs or attributes."""


class TraceError(NeedlecError):
    """Tracing failed, e.g. on data-dependent Python control flow."""


class PassError(NeedlecError):
    """A compiler pass failed; the message names the pass and the passes before it."""


class AutodiffError(NeedlecError):
    """A graph cannot be differentiated as asked (integer values, missing gradient rules)."""


class CodegenError(NeedlecError):
    """Lowering or native code generation failed."""


class RuntimeInputError(NeedlecError):
    """Inputs given to a compiled model do not match its signature."""


class ArtifactError(NeedlecError):
    """A compiled artifact (shared library, object) could not be written or loaded."""


class InternalError(NeedlecError):
    """A bug in needlec: an unexpected exception inside it (e.g. in an ONNX converter); please report it."""
