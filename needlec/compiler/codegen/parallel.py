"""Parallel loops on the CPU: outlined and run by the team of the OpenMP runtime.

A ``parallel`` loop is not inside another one, and the schedule that marked
it has checked that its iterations touch disjoint memory. It becomes

* a worker ``<kernel>.<var>.body(buffers..., local slots..., loop variable
  slots..., i64 begin, i64 end)`` running the loop's body for ``begin <= var
  < end``; the kernel's buffers are ``noalias`` parameters again, so the
  vectorizer needs no run-time alias checks; the variables of the loops
  around it arrive through stack slots;
* a trampoline ``<kernel>.<var>.team(ptr context)`` that every thread of the
  team runs: it takes the thread's share of the iterations (contiguous
  chunks of ``ceil(extent / threads)``, so each iteration computes exactly
  what the serial loop does: results never depend on the thread count) and
  calls the worker with the arguments stored in the context;
* in the kernel, the context (the buffer pointers and the slots of the
  kernel's locals, on the stack) and ``GOMP_parallel(team, context, threads,
  0)``, which returns once every thread is done.

Why libgomp's entry point: GCC's OpenMP runtime comes with every ``cc`` and
LLVM's libomp implements the same ``GOMP_*`` entry points, so the JIT (which
loads the runtime into the process, ``build/jit.py``), shared libraries and
executables (linked with ``-fopenmp``, ``build/native.py``) share the one
runtime the rest of the process uses; a parallel region entered from inside
another runs on one thread, so a model called from an OpenMP region does not
oversubscribe the cores.

The team's size is ``needlec.thread_count()``, defined once per module: the
count set through ``<prefix>_set_num_threads`` (``needlec/abi.py``), else
``NEEDLEC_NUM_THREADS`` read from the environment at the first parallel loop,
else 0, the runtime's default (``OMP_NUM_THREADS``, else every core).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import llvmlite.ir as ir

from needlec.compiler.loops.ir import Loop

if TYPE_CHECKING:
    from needlec.compiler.codegen.llvm_emit import KernelEmitter

I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()
VOID = ir.VoidType()

GOMP_PARALLEL = "GOMP_parallel"  # the symbol whose presence means an artifact needs the OpenMP runtime
THREADS_GLOBAL = "needlec.num_threads"  # i32: -1 until known, then 0 (the runtime's default) or the count
THREAD_COUNT = "needlec.thread_count"
ENVIRONMENT_VARIABLE = "NEEDLEC_NUM_THREADS"


def _declare(module: ir.Module, name: str, result: ir.Type, args: list[ir.Type]) -> ir.Function:
    existing = module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    return ir.Function(module, ir.FunctionType(result, args), name=name)


def _threads_global(module: ir.Module) -> ir.GlobalVariable:
    existing = module.globals.get(THREADS_GLOBAL)
    if isinstance(existing, ir.GlobalVariable):
        return existing
    var = ir.GlobalVariable(module, I32, name=THREADS_GLOBAL)
    var.initializer = ir.Constant(I32, -1)
    var.linkage = "internal"
    return var


def _thread_count(module: ir.Module) -> ir.Function:
    """``i32 needlec.thread_count()``: the team size to ask for (see the module docstring)."""
    existing = module.globals.get(THREAD_COUNT)
    if isinstance(existing, ir.Function):
        return existing
    fn = ir.Function(module, ir.FunctionType(I32, []), name=THREAD_COUNT)
    fn.linkage = "internal"
    count = _threads_global(module)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    known = fn.append_basic_block("known")
    lookup = fn.append_basic_block("lookup")
    current = b.load(count)
    b.cbranch(b.icmp_signed(">=", current, ir.Constant(I32, 0)), known, lookup)
    ir.IRBuilder(known).ret(current)
    b = ir.IRBuilder(lookup)
    name = bytearray(ENVIRONMENT_VARIABLE.encode() + b"\0")
    text = ir.GlobalVariable(module, ir.ArrayType(ir.IntType(8), len(name)), name="needlec.threads_variable")
    text.initializer = ir.Constant(text.value_type, name)
    text.global_constant = True
    text.linkage = "private"
    value = b.call(_declare(module, "getenv", PTR, [PTR]), [text])
    unset = b.icmp_unsigned("==", value, ir.Constant(PTR, None))
    parsed = b.call(_declare(module, "atoi", I32, [PTR]), [b.select(unset, text, value)])  # atoi("NEED...") = 0
    chosen = b.select(unset, ir.Constant(I32, 0), b.select(b.icmp_signed("<", parsed, ir.Constant(I32, 0)),
                                                             ir.Constant(I32, 0), parsed))
    b.store(chosen, count)  # racing first calls store the same value
    b.ret(chosen)
    return fn


def define_thread_setter(module: ir.Module, symbol: str) -> None:
    """``void symbol(i32 n)``: use ``n`` threads from now on (``n <= 0``: the OpenMP runtime's default)."""
    fn = ir.Function(module, ir.FunctionType(VOID, [I32]), name=symbol)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    n = fn.args[0]
    b.store(b.select(b.icmp_signed("<", n, ir.Constant(I32, 0)), ir.Constant(I32, 0), n), _threads_global(module))
    b.ret_void()


def emit_parallel_loop(emitter: KernelEmitter, loop: Loop) -> None:
    """Run ``loop`` of ``emitter``'s kernel on the OpenMP team (see the module docstring)."""
    module, b = emitter.module, emitter.builder
    buffers, local_names, var_names = list(emitter.buffers), list(emitter.locals), list(emitter.vars)
    base = f"{emitter.function.name}.{loop.var}"
    # the worker: the loop over [begin, end) with the buffers as noalias parameters
    params = [PTR] * (len(buffers) + len(local_names) + len(var_names)) + [I64, I64]
    worker_fn = ir.Function(module, ir.FunctionType(VOID, params), name=f"{base}.body")
    worker_fn.linkage = "internal"
    worker_fn.attributes.add("noinline")  # why: a function of its own keeps the noalias parameters
    worker = type(emitter)(module, emitter.kernel, emitter.target, function=worker_fn)
    for name, arg in zip(buffers, worker_fn.args):
        arg.add_attribute("noalias")
        worker.buffers[name] = arg
    for name, arg in zip(local_names, worker_fn.args[len(buffers):]):
        worker.locals[name] = (arg, emitter.locals[name][1])
    worker.builder.position_at_end(worker.body_block)
    for name, arg in zip(var_names, worker_fn.args[len(buffers) + len(local_names):]):
        worker.vars[name] = worker.builder.load(arg, typ=I64, name=name)
    worker.counted_loop(loop, worker_fn.args[-2], worker_fn.args[-1])
    worker.builder.ret_void()
    worker.entry_builder.branch(worker.body_block)
    # the trampoline every thread runs: its chunk of the iterations, then the worker
    team = ir.Function(module, ir.FunctionType(VOID, [PTR]), name=f"{base}.team")
    team.linkage = "internal"
    t = ir.IRBuilder(team.append_basic_block("entry"))
    context_type = ir.ArrayType(PTR, max(len(params) - 2, 1))
    args = [t.load(t.gep(team.args[0], [ir.Constant(I64, i)], inbounds=True, source_etype=PTR), typ=PTR)
            for i in range(len(params) - 2)]
    thread = t.sext(t.call(_declare(module, "omp_get_thread_num", I32, []), []), I64)
    threads = t.sext(t.call(_declare(module, "omp_get_num_threads", I32, []), []), I64)
    extent = ir.Constant(I64, loop.extent)
    chunk = t.sdiv(t.add(extent, t.sub(threads, ir.Constant(I64, 1))), threads)
    begin = t.add(ir.Constant(I64, loop.start), t.mul(thread, chunk))
    stop = ir.Constant(I64, loop.start + loop.extent)
    end = t.add(begin, chunk)
    end = t.select(t.icmp_signed("<", end, stop), end, stop)
    t.call(worker_fn, [*args, begin, end])  # begin >= end: a thread without iterations runs none
    t.ret_void()
    # in the kernel: the context on the stack, then the team
    context = emitter.entry_builder.alloca(context_type, name=f"{loop.var}.context")
    var_slots = []
    for name in var_names:
        slot = emitter.entry_builder.alloca(I64, name=f"{loop.var}.{name}.slot")
        b.store(emitter.vars[name], slot)
        var_slots.append(slot)
    values = [emitter.buffers[n] for n in buffers] + [emitter.locals[n][0] for n in local_names] + var_slots
    for i, value in enumerate(values):
        b.store(value, b.gep(context, [ir.Constant(I64, 0), ir.Constant(I64, i)], inbounds=True))
    gomp = _declare(module, GOMP_PARALLEL, VOID, [PTR, PTR, I32, I32])
    b.call(gomp, [team, context, b.call(_thread_count(module), []), ir.Constant(I32, 0)])
