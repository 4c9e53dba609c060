"""Per-kernel timing in the entry point, off until ``<prefix>_set_profiling(1)``.

The entry calls the kernels in order on one of two paths, chosen by a
module-private ``i32`` flag: the plain calls (profiling off: one load and one
branch per run), or the same calls each bracketed by two reads of
``clock_gettime(CLOCK_MONOTONIC)`` (libc: the JIT resolves it in-process,
libraries and executables link it), which add to the kernel's counters:
``abi.PROFILE_FIELDS`` int64s per kernel, total nanoseconds, calls, the last
call's start and duration. The last call's start and duration let a caller
that reads them after every run lay out a timeline (Chrome trace events);
CLOCK_MONOTONIC is the clock of Python's ``time.monotonic_ns`` on Linux, so
such a timeline and the caller's own timestamps agree.

``<prefix>_profile_info`` returns ``profile_info_json``: per kernel its
name, its sources (graph node, op, origin) and the static estimates of
``loops/cost.py`` (floating-point operations and bytes per call), so a
loaded library is profiled without the compiler (``runtime/profile.py``).
The module's globals are internal: two models linked into one program keep
their own counters.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import llvmlite.ir as ir

from needlec import abi
from needlec.compiler.loops.cost import kernel_cost
from needlec.compiler.loops.ir import Program

I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()
CLOCK_MONOTONIC = 1  # Linux's clockid_t value (every architecture)
FIELDS = len(abi.PROFILE_FIELDS)


def profile_info_json(program: Program) -> str:
    """The JSON text ``<prefix>_profile_info`` returns: each kernel's name, sources, flops and bytes per call."""
    kernels = []
    for kernel in program.kernels:
        cost = kernel_cost(kernel)
        sources = [{"node": s.node, "op": s.op, **({"origin": s.origin} if s.origin is not None else {})}
                   for s in kernel.sources]
        kernels.append({"name": kernel.name, "sources": sources, "flops": cost.flops, "bytes": cost.bytes})
    return json.dumps({"clock": "CLOCK_MONOTONIC", "fields": list(abi.PROFILE_FIELDS), "kernels": kernels})


def emit_kernel_calls(builder: ir.IRBuilder, calls: Sequence[tuple[ir.Function, Sequence[ir.Value]]],
                      program: Program, prefix: str) -> None:
    """Call each ``(kernel function, arguments)`` of ``calls`` in order at ``builder``, timed when profiling is on,
    and define the profiling symbols of ``prefix`` (``needlec/abi.py``) in the builder's module.

    The builder is left after both paths, in the block where they meet."""
    module = builder.module
    flag = ir.GlobalVariable(module, I32, name="needlec.profiling")
    flag.initializer = ir.Constant(I32, 0)
    flag.linkage = "internal"
    counters_type = ir.ArrayType(I64, max(FIELDS * len(calls), 1))
    counters = ir.GlobalVariable(module, counters_type, name="needlec.profile")
    counters.initializer = ir.Constant(counters_type, None)
    counters.linkage = "internal"
    counters.align = 8
    now = _now_function(module)

    on = builder.icmp_unsigned("!=", builder.load(flag, typ=I32), ir.Constant(I32, 0))
    with builder.if_else(on, likely=False) as (timed, plain):
        with timed:
            for i, (fn, args) in enumerate(calls):
                start = builder.call(now, [])
                builder.call(fn, args)
                took = builder.sub(builder.call(now, []), start)
                slot = [builder.gep(counters, [ir.Constant(I64, 0), ir.Constant(I64, FIELDS * i + f)], inbounds=True)
                        for f in range(FIELDS)]
                for field, delta in ((slot[0], took), (slot[1], ir.Constant(I64, 1))):
                    builder.store(builder.add(builder.load(field, typ=I64), delta), field)
                builder.store(start, slot[2])
                builder.store(took, slot[3])
        with plain:
            for fn, args in calls:
                builder.call(fn, args)

    setter = ir.Function(module, ir.FunctionType(I32, [I32]), name=abi.set_profiling(prefix))
    b = ir.IRBuilder(setter.append_basic_block("entry"))
    previous = b.load(flag, typ=I32)
    b.store(b.zext(b.icmp_unsigned("!=", setter.args[0], ir.Constant(I32, 0)), I32), flag)
    b.ret(previous)
    getter = ir.Function(module, ir.FunctionType(PTR, []), name=abi.profile_counters(prefix))
    ir.IRBuilder(getter.append_basic_block("entry")).ret(counters)
    text = profile_info_json(program).encode() + b"\0"
    info_type = ir.ArrayType(I8, len(text))
    info = ir.GlobalVariable(module, info_type, name="needlec.profile_info")
    info.initializer = ir.Constant(info_type, bytearray(text))
    info.global_constant = True
    info.linkage = "private"
    info_getter = ir.Function(module, ir.FunctionType(PTR, []), name=abi.profile_info(prefix))
    ir.IRBuilder(info_getter.append_basic_block("entry")).ret(info)


def _now_function(module: ir.Module) -> ir.Function:
    """An internal ``i64 now()``: CLOCK_MONOTONIC in nanoseconds, through libc's ``clock_gettime``."""
    timespec = ir.LiteralStructType([I64, I64])  # struct timespec on 64-bit Linux: tv_sec, tv_nsec
    clock = module.globals.get("clock_gettime")
    if clock is None:
        clock = ir.Function(module, ir.FunctionType(I32, [I32, PTR]), name="clock_gettime")
    now = ir.Function(module, ir.FunctionType(I64, []), name="needlec.now_ns")
    now.linkage = "internal"
    b = ir.IRBuilder(now.append_basic_block("entry"))
    spec = b.alloca(timespec)
    b.call(clock, [ir.Constant(I32, CLOCK_MONOTONIC), spec])
    seconds = b.load(b.gep(spec, [ir.Constant(I32, 0), ir.Constant(I32, 0)], inbounds=True, source_etype=timespec),
                     typ=I64)
    nanos = b.load(b.gep(spec, [ir.Constant(I32, 0), ir.Constant(I32, 1)], inbounds=True, source_etype=timespec),
                   typ=I64)
    b.ret(b.add(b.mul(seconds, ir.Constant(I64, 1_000_000_000)), nanos))
    return now
