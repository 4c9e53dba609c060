"""Loop IR -> LLVM IR function bodies, shared by every LLVM-based backend.

``emit_kernel`` writes one ``Kernel`` as an LLVM function whose parameters are
the kernel's buffers. Scalar semantics follow NumPy: integer division
truncates and yields 0 for a zero divisor (never trapping), ``mod`` is
floor-mod, ``max``/``min`` propagate NaN, bool is ``i1`` in registers and one
byte in memory.
"""
from __future__ import annotations

from typing import Callable

import llvmlite.ir as ir

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.loops.ir import (Assign, Binary, Cast, Const, Expr, If, Kernel, Load, Local,
                                       LocalRef, Loop, Select, Stmt, Store, Unary, Var)
from needlec.errors import CodegenError

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()

_MEMORY_TYPES: dict[DType, ir.Type] = {
    DType.F16: ir.HalfType(), DType.F32: ir.FloatType(), DType.F64: ir.DoubleType(),
    DType.I8: I8, DType.I16: ir.IntType(16), DType.I32: I32, DType.I64: I64,
    DType.U8: I8, DType.BOOL: I8,
}
_SUFFIX = {DType.F16: "f16", DType.F32: "f32", DType.F64: "f64"}
_LIBM = {"erf": {DType.F32: "erff", DType.F64: "erf"}}
_FLOAT_INTRINSIC = {"exp": "exp", "log": "log", "sqrt": "sqrt", "sin": "sin", "cos": "cos",
                    "tanh": "tanh", "floor": "floor", "ceil": "ceil", "round": "roundeven", "abs": "fabs"}
_FCMP = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def memory_type(dtype: DType) -> ir.Type:
    """The LLVM type a dtype has in memory."""
    return _MEMORY_TYPES[dtype]


def register_type(dtype: DType) -> ir.Type:
    """The LLVM type a dtype has in registers (bool is i1)."""
    return I1 if dtype is DType.BOOL else _MEMORY_TYPES[dtype]


class KernelEmitter:
    """Emits one kernel into an LLVM module."""

    def __init__(self, module: ir.Module, kernel: Kernel, linkage: str = "internal") -> None:
        self.module = module
        self.kernel = kernel
        fnty = ir.FunctionType(ir.VoidType(), [PTR] * len(kernel.buffers))
        self.function = ir.Function(module, fnty, name=kernel.name)
        self.function.linkage = linkage
        for arg in self.function.args:
            arg.add_attribute("noalias")
        # locals' allocas get a block of their own: two builders writing one block corrupt its order
        self.entry_builder = ir.IRBuilder(self.function.append_basic_block("entry"))
        self.body_block = self.function.append_basic_block("body")
        self.builder = ir.IRBuilder(self.body_block)
        self.buffers = {b.name: arg for b, arg in zip(kernel.buffers, self.function.args)}
        self.vars: dict[str, ir.Value] = {}
        self.locals: dict[str, tuple[ir.Value, DType]] = {}

    def emit(self) -> ir.Function:
        for stmt in self.kernel.body:
            self.stmt(stmt)
        self.builder.ret_void()
        self.entry_builder.branch(self.body_block)
        return self.function

    # -- statements -----------------------------------------------------------
    def stmt(self, s: Stmt) -> None:
        b = self.builder
        if isinstance(s, Loop):
            self.loop(s)
        elif isinstance(s, Store):
            value = self.expr(s.value)
            if s.value.dtype is DType.BOOL:
                value = b.zext(value, I8)
            b.store(value, self.address(s.buffer.name, s.buffer.dtype, s.index))
        elif isinstance(s, Local):
            slot = self.entry_builder.alloca(register_type(s.init.dtype), name=s.name)
            self.locals[s.name] = (slot, s.init.dtype)
            b.store(self.expr(s.init), slot)
        elif isinstance(s, Assign):
            b.store(self.assigned_value(s), self.locals[s.name][0])
        elif isinstance(s, If):
            cond = self.expr(s.cond)
            with b.if_else(cond) as (then, orelse):
                with then:
                    for inner in s.then:
                        self.stmt(inner)
                with orelse:
                    for inner in s.orelse:
                        self.stmt(inner)
        else:
            raise CodegenError(f"kernel {self.kernel.name}: cannot emit statement {type(s).__name__}")

    def assigned_value(self, s: Assign) -> ir.Value:
        """The value of an assignment; a float ``acc = acc + x`` (or ``*``) may be reassociated.

        Why: accumulations are reductions, and LLVM only vectorizes a float
        reduction it may reorder; the result differs from sequential order by
        rounding only, as BLAS and every vectorized reduction does.
        """
        v = s.value
        if (isinstance(v, Binary) and v.op in ("add", "mul") and v.dtype.is_float
                and LocalRef(s.name, v.dtype) in (v.a, v.b)):
            x, y = self.expr(v.a), self.expr(v.b)
            emit = self.builder.fadd if v.op == "add" else self.builder.fmul
            return emit(x, y, flags=("reassoc", "contract"))
        return self.expr(v)

    def loop(self, s: Loop) -> None:
        b = self.builder
        pre = b.block
        header = self.function.append_basic_block(f"{s.var}.header")
        body = self.function.append_basic_block(f"{s.var}.body")
        done = self.function.append_basic_block(f"{s.var}.done")
        b.branch(header)
        b.position_at_end(header)
        index = b.phi(I64, name=s.var)
        index.add_incoming(ir.Constant(I64, s.start), pre)
        b.cbranch(b.icmp_signed("<", index, ir.Constant(I64, s.start + s.extent)), body, done)
        b.position_at_end(body)
        self.vars[s.var] = index
        for inner in s.body:
            self.stmt(inner)
        step = b.add(index, ir.Constant(I64, 1), name=f"{s.var}.next", flags=["nsw"])
        index.add_incoming(step, b.block)
        b.branch(header)
        b.position_at_end(done)

    # -- expressions ----------------------------------------------------------
    def address(self, buffer: str, dtype: DType, index: Expr) -> ir.Value:
        return self.builder.gep(self.buffers[buffer], [self.expr(index)], inbounds=True,
                                source_etype=memory_type(dtype))

    def expr(self, e: Expr) -> ir.Value:
        b = self.builder
        if isinstance(e, Const):
            if e.dtype.is_float:
                return ir.Constant(register_type(e.dtype), float(e.value))
            return ir.Constant(register_type(e.dtype), int(e.value))
        if isinstance(e, Var):
            return self.vars[e.name]
        if isinstance(e, LocalRef):
            slot, dtype = self.locals[e.name]
            return b.load(slot, typ=register_type(dtype))
        if isinstance(e, Load):
            value = b.load(self.address(e.buffer.name, e.dtype, e.index), typ=memory_type(e.dtype))
            return b.icmp_unsigned("!=", value, ir.Constant(I8, 0)) if e.dtype is DType.BOOL else value
        if isinstance(e, Unary):
            return self.unary(e.op, e.x.dtype, self.expr(e.x))
        if isinstance(e, Binary):
            return self.binary(e.op, e.a.dtype, self.expr(e.a), self.expr(e.b))
        if isinstance(e, Select):
            return b.select(self.expr(e.cond), self.expr(e.a), self.expr(e.b))
        if isinstance(e, Cast):
            return self.cast(self.expr(e.x), e.x.dtype, e.dtype)
        raise CodegenError(f"kernel {self.kernel.name}: cannot emit expression {type(e).__name__}")

    def intrinsic(self, name: str, dtype: DType, args: list[ir.Value]) -> ir.Value:
        """Call ``llvm.<name>.<type>`` (or a libm function where LLVM has no intrinsic)."""
        if name in _LIBM:
            symbol = _LIBM[name].get(dtype)
            if symbol is None:
                raise CodegenError(f"{name} has no {dtype.value} implementation")
        else:
            symbol = f"llvm.{name}.{_SUFFIX[dtype]}"
        fn = self.module.globals.get(symbol)
        if fn is None:
            ty = register_type(dtype)
            fn = ir.Function(self.module, ir.FunctionType(ty, [ty] * len(args)), name=symbol)
        return self.builder.call(fn, args)

    def unary(self, op: str, dtype: DType, x: ir.Value) -> ir.Value:
        b = self.builder
        if dtype.is_float:
            if op == "neg":
                return b.fneg(x)
            if op in _FLOAT_INTRINSIC:
                return self.intrinsic(_FLOAT_INTRINSIC[op], dtype, [x])
            if op in _LIBM:
                return self.intrinsic(op, dtype, [x])
        elif op == "neg":
            return b.neg(x)
        elif op == "abs":
            return b.select(b.icmp_signed("<", x, ir.Constant(x.type, 0)), b.neg(x), x) if dtype.is_signed else x
        elif op == "not":
            return b.xor(x, ir.Constant(x.type, 1))
        raise CodegenError(f"unary {op} is not defined for {dtype.value}")

    def binary(self, op: str, dtype: DType, x: ir.Value, y: ir.Value) -> ir.Value:
        return (self.float_binary if dtype.is_float else self.int_binary)(op, dtype, x, y)

    def float_binary(self, op: str, dtype: DType, x: ir.Value, y: ir.Value) -> ir.Value:
        b = self.builder
        simple: dict[str, Callable[[ir.Value, ir.Value], ir.Value]] = {
            "add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv}
        if op in simple:
            return simple[op](x, y)
        if op in _FCMP:
            return b.fcmp_unordered("!=", x, y) if op == "ne" else b.fcmp_ordered(_FCMP[op], x, y)
        if op == "pow":
            return self.intrinsic("pow", dtype, [x, y])
        if op in ("max", "min"):
            return self.intrinsic("maximum" if op == "max" else "minimum", dtype, [x, y])
        if op == "mod":  # floor-mod: fmod, then move into the divisor's sign
            zero = ir.Constant(x.type, 0.0)
            r = b.frem(x, y)
            fix = b.and_(b.fcmp_ordered("!=", r, zero),
                         b.icmp_unsigned("!=", b.fcmp_ordered("<", r, zero), b.fcmp_ordered("<", y, zero)))
            return b.select(fix, b.fadd(r, y), r)
        raise CodegenError(f"binary {op} is not defined for {dtype.value}")

    def int_binary(self, op: str, dtype: DType, x: ir.Value, y: ir.Value) -> ir.Value:
        b = self.builder
        signed = dtype.is_signed
        simple: dict[str, Callable[[ir.Value, ir.Value], ir.Value]] = {
            "add": b.add, "sub": b.sub, "mul": b.mul, "and": b.and_, "or": b.or_, "xor": b.xor,
            "shl": b.shl, "lshr": b.lshr}
        if op in simple:
            return simple[op](x, y)
        if op in _FCMP:
            return (b.icmp_signed if signed else b.icmp_unsigned)(_FCMP[op], x, y)
        if op in ("max", "min"):
            cmp = (b.icmp_signed if signed else b.icmp_unsigned)(">" if op == "max" else "<", x, y)
            return b.select(cmp, x, y)
        if op in ("div", "mod"):
            return self.int_divmod(op, signed, x, y)
        raise CodegenError(f"binary {op} is not defined for {dtype.value}")

    def int_divmod(self, op: str, signed: bool, x: ir.Value, y: ir.Value) -> ir.Value:
        """Division that never traps: a zero divisor gives 0, and ``MIN / -1`` wraps."""
        b = self.builder
        zero, one = ir.Constant(x.type, 0), ir.Constant(x.type, 1)
        is_zero = b.icmp_unsigned("==", y, zero)
        if not signed:
            safe = b.select(is_zero, one, y)
            return b.select(is_zero, zero, b.udiv(x, safe) if op == "div" else b.urem(x, safe))
        minus_one = ir.Constant(x.type, -1)
        is_minus_one = b.icmp_signed("==", y, minus_one)
        safe = b.select(b.or_(is_zero, is_minus_one), one, y)
        if op == "div":
            return b.select(is_zero, zero, b.select(is_minus_one, b.neg(x), b.sdiv(x, safe)))
        r = b.srem(x, safe)
        fix = b.and_(b.icmp_signed("!=", r, zero),
                     b.icmp_unsigned("!=", b.icmp_signed("<", r, zero), b.icmp_signed("<", y, zero)))
        r = b.select(fix, b.add(r, safe), r)
        return b.select(b.or_(is_zero, is_minus_one), zero, r)

    def cast(self, x: ir.Value, src: DType, dst: DType) -> ir.Value:
        b = self.builder
        if src is dst:
            return x
        to = register_type(dst)
        if dst is DType.BOOL:
            if src.is_float:
                return b.fcmp_unordered("!=", x, ir.Constant(x.type, 0.0))
            return b.icmp_unsigned("!=", x, ir.Constant(x.type, 0))
        if src is DType.BOOL:
            return b.uitofp(x, to) if dst.is_float else b.zext(x, to)
        if src is DType.F64 and dst is DType.F16:  # via f32: x86 has no f64->f16 instruction, and
            x = b.fptrunc(x, ir.FloatType())     # the libcall is not resolvable in-process
            src = DType.F32
        if src.is_float and dst.is_float:
            return b.fpext(x, to) if src.itemsize < dst.itemsize else b.fptrunc(x, to)
        if src.is_float:
            return b.fptosi(x, to) if dst.is_signed else b.fptoui(x, to)
        if dst.is_float:
            return b.sitofp(x, to) if src.is_signed else b.uitofp(x, to)
        if src.itemsize > dst.itemsize:
            return b.trunc(x, to)
        if src.itemsize < dst.itemsize:
            return b.sext(x, to) if src.is_signed else b.zext(x, to)
        return x
