"""The contract between generated code and the runtime: the symbols every needlec module exports.

``int32_t needlec_run(void **inputs, void **outputs)``
    runs the graph on caller-owned, contiguous input and output buffers;
    returns 0 on success.
``const char *needlec_signature(void)``
    a JSON description of inputs, outputs and variables (name, shape, dtype)
    and of the CPU the code is for (``cpu``, ``cpu_features``), which the
    loaders read to validate every call before it reaches native code
    (``runtime/signature.py``).
``void *needlec_variable(int32_t i)``
    the storage of variable ``i`` (signature order), or NULL when out of range.

Code generation (``compiler/codegen``) emits these symbols, the build step
(``needlec/build``) links and loads them, the runtime calls them; none of
them imports another to learn the names.
"""
ENTRY = "needlec_run"
SIGNATURE = "needlec_signature"
VARIABLE = "needlec_variable"
