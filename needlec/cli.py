"""The ``needlec`` command: compile, run, inspect IR, list passes and ops.

Models are ONNX files (``--input-shape NAME=1x3x224x224`` fixes dynamic
dimensions), Python model files or IR text files. ``compile`` writes a shared
library plus its C header, an object file, a standalone executable, LLVM IR,
graph IR or loop IR, reporting each stage on standard error unless ``-q``
(``ir`` and ``run`` report only compilations that take more than a couple of
seconds). Every user error prints one line (``needlec: error: ...``) and
exits 1; ``--debug`` shows the traceback. Internal errors exit 2.
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from needlec.errors import InternalError, NeedlecError

if TYPE_CHECKING:  # numpy and the compiler load lazily, in the commands, so that `needlec --help` starts fast
    import numpy as np

    from needlec.compiler.ir.graph import Graph
    from needlec.compiler.target import Target
    from needlec.progress import Progress

log = logging.getLogger("needlec")  # the CLI's messages; main() shows them on stderr (-q: warnings only, -v: all)

EMITS = ("so", "exe", "obj", "llvm", "ir", "loops")
EMIT_BY_SUFFIX = {".so": "so", "": "exe", ".exe": "exe", ".o": "obj", ".ll": "llvm", ".nir": "ir",
                  ".loops": "loops"}


def _pass_name(name: str) -> str:
    """A ``--print-after`` pass name, checked when given (the pass table loads only then)."""
    from needlec.compiler.passes import PASS_NAMES

    if name not in PASS_NAMES:
        raise argparse.ArgumentTypeError(f"invalid choice: {name!r} (choose from {', '.join(PASS_NAMES)})")
    return name


def _pipeline_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--print-after-all", action="store_true", help="print the IR after every pass")
    p.add_argument("--print-after", action="append", default=[], metavar="PASS", type=_pass_name,
                   help="print the IR after PASS (repeatable)")
    p.add_argument("--dump-dir", metavar="DIR",
                   help="write the IR after each printed pass to DIR/NN-pass.txt; alone, after every pass "
                        "(to DIR only)")
    p.add_argument("--check-numerics", action="store_true",
                   help="compare every graph pass's result with the reference interpreter")
    p.add_argument("--no-verify", action="store_true", help="skip the verifier between passes")
    p.add_argument("--timing", action="store_true", help="print the time spent in each pass")
    p.add_argument("--no-fuse", action="store_true",
                   help="skip fuse_elementwise: every non-view node gets its own kernel")


def _target_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="cpu", help="backend to compile for")


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="an ONNX model (.onnx), a Python model file (defines model, example_inputs) "
                                 "or an IR text file (.nir)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=DIMS",
                   help="static shape of an ONNX input with dynamic dimensions, e.g. x=1x3x224x224 (repeatable)")
    p.add_argument("--size-budget", type=int, metavar="ELEMENTS",
                   help="most elements any one tensor of an ONNX model may have (default 2**31); unrolled loop "
                        "steps are capped at ELEMENTS / 2048")
    _target_arg(p)
    p.add_argument("--cpu", default="host", metavar="NAME",
                   help="CPU to generate code for: host, a baseline x86-64, x86-64-v2, x86-64-v3, "
                        "x86-64-v4 (portable artifacts), or a CPU name such as skylake")


def _input_shapes(items: Sequence[str]) -> dict[str, tuple[int, ...]] | None:
    """``--input-shape NAME=1x3x224x224`` items (``x`` or ``,`` between extents; nothing for a scalar) by name."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        name, sep, dims = item.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.replace(",", "x").split("x")) if dims.strip() else ()
        except ValueError:
            shape = (-1,)
        if not sep or not name or any(d < 0 for d in shape):
            raise NeedlecError(f"--input-shape expects NAME=DIMS such as x=1x3x224x224, found {item!r}")
        if name in shapes:
            raise NeedlecError(f"--input-shape gives {name!r} twice")
        shapes[name] = shape
    return shapes or None


def _load_model(args: argparse.Namespace, progress: Progress) -> Graph:
    from needlec.driver import load_model_file

    shapes = _input_shapes(args.input_shape)
    with progress.stage(f"import {os.path.basename(args.model)}"):
        return load_model_file(args.model, shapes, args.size_budget)


def _target(args: argparse.Namespace) -> Target:
    """The ``--target`` / ``--cpu`` target, resolved before any compiling (an unknown name fails fast)."""
    from needlec.compiler.target import Target

    return Target.named(args.target, args.cpu)


def _progress(args: argparse.Namespace, mode: str) -> Progress:
    """``always`` (compile: a bar on a terminal, else a line per stage), ``auto`` (ir, run: a bar on a terminal
    once compiling takes a couple of seconds) or ``never``; nothing with -q, nor with -v, which logs every stage
    instead."""
    from needlec.progress import Progress

    return Progress(False if args.quiet or args.verbose else {"always": True, "auto": None, "never": False}[mode])


class _DumpOnly(io.StringIO):
    """Standard output without the printed IR: ``--dump-dir`` without a print flag dumps every pass to DIR only
    (the pipeline writes each pass's IR in one call that starts with its banner)."""

    def write(self, s: str) -> int:
        if not s.startswith("// ----- IR after "):
            sys.stdout.write(s)
        return len(s)


def _options(args: argparse.Namespace) -> dict:
    dump_only = bool(args.dump_dir) and not (args.print_after_all or args.print_after)
    return {"print_after": frozenset(args.print_after), "print_after_all": args.print_after_all or dump_only,
            "dump_dir": args.dump_dir, "check_numerics": args.check_numerics,
            "verify_each": not args.no_verify, "timing": args.timing, "fuse": not args.no_fuse,
            "stream": _DumpOnly() if dump_only else sys.stdout}


LOSSES = ("cross_entropy", "mse", "bce_with_logits")
OPTIMIZERS = ("sgd", "adam", "adamw")


def _compile_training_cmd(args: argparse.Namespace) -> None:
    """``compile --train``: one training step of the model as a shared library plus a C header."""
    import numpy as np

    import needlec
    from needlec.driver import load_trainable_model
    from needlec.training import compile_training_step

    model, inputs = load_trainable_model(args.model, _input_shapes(args.input_shape), args.size_budget)
    forward = needlec.trace(model, *inputs)
    names = [v.name for v in (model.graph if isinstance(model, needlec.nn.GraphModule) else forward).inputs]
    output = forward.outputs
    if len(output) != 1 or not output[0].dtype.is_float:
        raise NeedlecError(f"--train needs a model with one float output, found {len(output)} output(s)")
    out = output[0]
    if args.loss == "cross_entropy":
        if out.type.rank < 2:
            raise NeedlecError(f"--loss cross_entropy needs (batch, classes, ...) logits, found shape {out.shape}")
        labels = np.zeros(out.shape[:1] + out.shape[2:], np.int64)
        loss_fn: Callable[..., Any] = needlec.losses.cross_entropy
    else:
        labels = np.zeros(out.shape, out.dtype.np)
        loss_fn = needlec.losses.mse_loss if args.loss == "mse" else needlec.losses.binary_cross_entropy_with_logits
    optimizers = {"sgd": lambda p: needlec.optim.SGD(p, lr=args.lr, momentum=args.momentum,
                                                     weight_decay=args.weight_decay),
                  "adam": lambda p: needlec.optim.Adam(p, lr=args.lr, weight_decay=args.weight_decay),
                  "adamw": lambda p: needlec.optim.AdamW(p, lr=args.lr, weight_decay=args.weight_decay)}
    step = compile_training_step(model, loss_fn, optimizers[args.optimizer](model.parameters()),
                                 (inputs, (labels,)), target=args.target, cpu=args.cpu,
                                 input_names=None if {"target", "target0"} & set(names) else names, **_options(args))
    library, header = step.export(args.output, header=args.header, name=args.name)
    log.info("wrote %s and %s (training step: %d parameter tensor(s), loss %s, optimizer %s, lr %s)", library, header,
             len(step.parameter_names), args.loss, args.optimizer, args.lr)


def _compile_cmd(args: argparse.Namespace) -> None:
    from needlec.abi import check_prefix
    from needlec.build.header import c_header
    from needlec.build.toolchain import output_path
    from needlec.compiler.codegen.cpu import signature_json
    from needlec.driver import BUILD_STAGES, run_pipeline, write_artifact
    from needlec.runtime.signature import Signature

    target = _target(args)
    check_prefix(args.name)
    if args.train:
        _compile_training_cmd(args)
        return
    emit = args.emit or EMIT_BY_SUFFIX.get(os.path.splitext(args.output)[1], "so")
    if args.header and emit not in ("so", "obj"):
        raise NeedlecError(f"--header goes with a shared library or object file, not --emit {emit}")
    for path in (args.output, args.header):
        if path:
            output_path(path)  # fail before compiling when a folder is missing
    with _progress(args, "always") as progress:
        progress.expect(1 + BUILD_STAGES[emit])
        result = run_pipeline(_load_model(args, progress), target, progress, **_options(args))
        write_artifact(result, target, emit, args.output, progress.stage, name=args.name)
    header = None
    if emit in ("so", "obj"):
        header = args.header or os.path.splitext(args.output)[0] + ".h"
        with open(header, "w") as f:
            f.write(c_header(Signature.from_json(signature_json(result.program, target)),
                             os.path.basename(args.output), args.name))
    also = f" and {header}" if header else ""
    log.info("wrote %s (%s, %d bytes)%s", args.output, emit, os.path.getsize(args.output), also)


def _ir_cmd(args: argparse.Namespace) -> None:
    from needlec.build.toolchain import output_path
    from needlec.compiler.ir.printer import print_graph
    from needlec.compiler.loops.printer import print_program
    from needlec.draw import render
    from needlec.driver import optimized_llvm_ir, run_pipeline

    pictures = {fmt: path for fmt, path in (("dot", args.dot), ("svg", args.svg), ("html", args.html)) if path}
    for path in pictures.values():
        output_path(path)  # fail before compiling when a folder is missing
    target = _target(args)
    stage = args.stage or (None if pictures else "all")  # a picture alone prints no IR
    stages = ("input", "graph", "loops", "llvm") if stage == "all" else (stage,) if stage else ()
    printing = bool(stages) or args.print_after_all or bool(args.print_after)
    with _progress(args, "never" if printing and sys.stdout.isatty() else "auto") as progress:  # no bar in the text
        graph = _load_model(args, progress)
        elide = None if args.full_constants else 16
        if "input" in stages:
            print(f"// ----- input graph -----\n{print_graph(graph, elide_constants=elide)}")
        options = _options(args)
        options["elide_constants"] = elide
        result = run_pipeline(graph, target, progress, **options)
        if "graph" in stages:
            print(f"// ----- graph after the last graph pass -----\n{print_graph(result.graph, elide_constants=elide)}")
        if "loops" in stages:
            print(f"// ----- loop IR -----\n{print_program(result.program, elide_constants=elide)}")
        if "llvm" in stages:
            text = optimized_llvm_ir(result.program, target, progress.stage)
            print(f"// ----- LLVM IR (optimised) -----\n{text}")
        for fmt, path in pictures.items():
            with progress.stage(f"draw {fmt}"):
                picture = render(result, fmt)
            with open(path, "w", encoding="utf-8") as f:
                f.write(picture)
    for path in pictures.values():
        log.info("wrote %s", path)


def _input_files(names: Sequence[str], named: Sequence[str], items: Sequence[str]) -> dict[str, str]:
    """The file of each input from ``--input NAME=FILE`` (``named``) and positional ``NAME=FILE`` or ``FILE``
    items (the next input in order), with the messages of the executables' ``main`` (build/executable.py)."""
    def slot(item: str) -> str | None:  # the input named by the item's NAME= prefix, the longest match
        found = [n for n in names if item.startswith(n + "=")]
        return max(found, key=len) if found else None

    files: dict[str, str] = {}
    positional = 0
    for item, is_named in [(i, True) for i in named] + [(i, False) for i in items]:
        name, path = slot(item), item
        if name is not None:
            path = item[len(name) + 1:]
        elif is_named and "=" in item:
            raise NeedlecError(f"unknown input '{item.partition('=')[0]}' in --input '{item}' (the model's inputs: "
                               "see --help)")
        elif is_named:
            raise NeedlecError(f"--input expects NAME=FILE.npy, found '{item}'")
        else:
            if positional >= len(names):
                raise NeedlecError(f"expected {len(names)} input(s), found more: {item}")
            name = names[positional]
            positional += 1
        if name in files:
            raise NeedlecError(f"input '{name}' given twice")
        files[name] = path
    return files


def _read_inputs(names: Sequence[str], files: dict[str, str]) -> dict[str, np.ndarray]:
    import numpy as np

    inputs: dict[str, np.ndarray] = {}
    for name in names:
        if name not in files:
            raise NeedlecError(f"missing input '{name}' (give {name}=FILE.npy; see --help)")
        try:
            inputs[name] = np.load(files[name], allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise NeedlecError(f"cannot read input {name} from {files[name]}: {exc}") from None
    return inputs


def _random_inputs(specs: Sequence[Any], seed: int) -> dict[str, np.ndarray]:
    """Seeded random data of each input's shape and dtype: floats in [-1, 1), integers in [0, 10), booleans."""
    import numpy as np

    rng = np.random.default_rng(seed)
    inputs: dict[str, np.ndarray] = {}
    for spec in specs:
        dtype = np.dtype(spec.dtype)
        if dtype == np.bool_:
            value = rng.random(spec.shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            value = rng.integers(0, 10, spec.shape).astype(dtype)
        else:
            value = rng.uniform(-1, 1, spec.shape).astype(dtype)
        inputs[spec.name] = np.asarray(value)
    return inputs


def _onnx_shapes_from_files(model: str, named: Sequence[str], items: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Without ``--input-shape``: each ONNX input's shape from the ``.npy`` file given for it (read from the
    file's header), so dynamic dimensions take the data's extents."""
    import numpy as np

    import onnx

    graph = onnx.load(model, load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    dynamic = {v.name for v in inputs if any(not d.HasField("dim_value") for d in v.type.tensor_type.shape.dim)}
    shapes: dict[str, tuple[int, ...]] = {}
    for name, path in _input_files([v.name for v in inputs], named, items).items():
        if name not in dynamic:  # a static input's file is checked against its shape when the model runs
            continue
        try:
            shapes[name] = tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)
        except (OSError, ValueError) as exc:
            raise NeedlecError(f"cannot read input {name} from {path}: {exc}") from None
    return shapes


def _run_cmd(args: argparse.Namespace) -> None:
    import numpy as np

    import time

    import needlec
    from needlec.build.executable import output_file_names
    from needlec.cache import compile_model_file

    if args.repeat < 1:
        raise NeedlecError(f"--repeat expects a positive count, found {args.repeat}")
    if args.random_inputs and (args.input or args.inputs):
        raise NeedlecError("--random-inputs replaces the input files; give one or the other")
    example: dict[str, np.ndarray] | None = None
    if args.model.endswith(".so"):
        if args.input_shape:
            raise NeedlecError("--input-shape applies to model files; a compiled library has fixed shapes")
        if args.cpu != "host":
            raise NeedlecError("--cpu applies to model files; a compiled library runs the code it was built with")
        runner = needlec.load(args.model)
    else:
        target = _target(args)
        if args.model.endswith(".py") and os.path.isfile(args.model):  # never cached: see needlec/cache.py
            from needlec.driver import _run_python_model, jit_compile, run_pipeline, to_graph

            if args.input_shape:
                raise NeedlecError(f"input shapes apply to ONNX models only; {args.model} fixes its own shapes")
            with _progress(args, "auto") as progress:
                with progress.stage(f"import {os.path.basename(args.model)}"):
                    model, example_inputs = _run_python_model(args.model)
                    graph = to_graph(model, example_inputs)
                    graph.name = os.path.splitext(os.path.basename(args.model))[0]
                    example = {v.name: x for v, x in zip(graph.inputs, example_inputs)}
                runner = jit_compile(run_pipeline(graph, target, progress).program, target, progress.stage)
        else:
            shapes = _input_shapes(args.input_shape)
            if shapes is None and args.model.endswith(".onnx") and os.path.isfile(args.model) and (
                    args.input or args.inputs):
                shapes = _onnx_shapes_from_files(args.model, args.input, args.inputs) or None
            with _progress(args, "auto") as progress:
                runner = compile_model_file(args.model, shapes, args.size_budget, target, progress,
                                            use_cache=not args.no_cache)
    specs = runner.signature.inputs
    names = [spec.name for spec in specs]
    if args.random_inputs:
        inputs = _random_inputs(specs, args.seed)
    elif example is not None and not (args.input or args.inputs):
        inputs = example  # a Python model file's own example_inputs
    else:
        inputs = _read_inputs(names, _input_files(names, args.input, args.inputs))
    if args.load_variables:
        _load_variables(runner, args.load_variables)
    outputs = runner(**inputs)
    profile, times = None, []
    if args.profile or args.profile_json:  # the run above was the warm-up; the profiled runs are the timed ones
        profile = runner.profile(*[inputs[n] for n in names], repeat=args.repeat, warmup=0, trace=args.profile_json)
        times = [e.duration_ns / 1e6 for e in profile.events if e.kernel is None]
    elif args.repeat > 1:
        for _ in range(args.repeat):
            begin = time.perf_counter()
            runner(**inputs)
            times.append((time.perf_counter() - begin) * 1000)
    if args.repeat > 1:
        lo, p50, p90, hi = np.percentile(times, [0, 50, 90, 100])
        print(f"latency over {args.repeat} runs (ms): min {lo:.3f}  p50 {p50:.3f}  p90 {p90:.3f}  max {hi:.3f}")
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
    files = output_file_names([spec.name for spec in runner.signature.outputs])
    for spec, value, file in zip(runner.signature.outputs, outputs, files):
        if args.output_dir:
            path = os.path.join(args.output_dir, file)
            np.save(path, value)
            print(f"{spec.describe()} -> {path}")
        else:
            print(f"{spec.describe()} =\n{np.array2string(value, threshold=64)}")
    if args.save_variables:
        variables: dict[str, Any] = runner.variables()
        np.savez(args.save_variables, **variables)
        print(f"variables ({len(runner.signature.variables)}) -> {args.save_variables}")
    if profile is not None:
        print(profile)
        if args.profile_json:
            print(f"trace ({len(profile.events)} events) -> {args.profile_json}")


def _cache_cmd(args: argparse.Namespace) -> None:
    """``needlec cache``: the compile cache's location, entries and bytes; ``--clear`` empties it first."""
    from needlec.cache import cache_dir, clear, entries, max_bytes

    if args.clear:
        count, size = clear()
        print(f"removed {count} entr{'y' if count == 1 else 'ies'} ({size} bytes) from {cache_dir()}")
    if args.info or not args.clear:
        found = entries()
        print(f"location: {cache_dir()}\nentries: {len(found)}\n"
              f"bytes: {sum(e.size for e in found)} of at most {max_bytes()} (NEEDLEC_CACHE_MAX_BYTES)")


def _load_variables(runner: Any, path: str) -> None:
    """Set the model's variables (trained parameters, optimizer state) from an ``.npz`` written by --save-variables."""
    import numpy as np

    try:
        saved = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise NeedlecError(f"cannot read variables from {path}: {exc}") from None
    if not isinstance(saved, np.lib.npyio.NpzFile):
        raise NeedlecError(f"{path} is not an .npz of variables (write one with --save-variables)")
    with saved:
        values = {name: saved[name] for name in saved.files}
    known = [spec.name for spec in runner.signature.variables]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise NeedlecError(f"{path} holds {', '.join(unknown)}, which the model has no variable for "
                           f"(variables: {', '.join(known) or 'none'})")
    for name, value in values.items():
        runner.set_variable(name, value)


def _passes_cmd(args: argparse.Namespace) -> None:
    from needlec.compiler.passes import passes_for
    from needlec.compiler.target import Target

    for i, p in enumerate(passes_for(Target.named(args.target).name)):
        print(f"{i:2d}. {p.name:<22}[{p.kind}] {p.doc}")


def _ops_cmd(args: argparse.Namespace) -> None:
    from needlec.compiler.ops.registry import all_ops

    for name, op in sorted(all_ops().items()):
        attrs = ", ".join(f"{k}: {a.kind}" for k, a in op.attrs.items())
        arity = "*" if op.arity is None else str(op.arity)
        print(f"{name:<16}({arity}) {'{' + attrs + '} ' if attrs else ''}{'[view] ' if op.is_view else ''}{op.doc}")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default where it says something (not for flags, unset or empty defaults)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS or default == []:
            return action.help
        return super()._get_help_string(action)


def _debug_arg(p: argparse.ArgumentParser) -> None:
    """``--debug`` after the subcommand too (SUPPRESS keeps the top-level value when it is absent), and ``-v``."""
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log every stage and step (logging DEBUG records) instead of a progress bar")


class _LogFormatter(logging.Formatter):
    """``needlec: message``; records of other levels than INFO name their level (``needlec: warning: ...``)."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else record.levelname.lower() + ": "
        return f"needlec: {level}{record.getMessage()}"


def _logging(args: argparse.Namespace) -> logging.Handler:
    """Show needlec's log records on standard error: INFO and up; -q: warnings and errors; -v: everything."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogFormatter())
    logger = logging.getLogger("needlec")
    logger.setLevel(logging.DEBUG if args.verbose else logging.WARNING if getattr(args, "quiet", False)
                    else logging.INFO)
    logger.addHandler(handler)
    return handler


def build_parser() -> argparse.ArgumentParser:
    from needlec import __version__

    parser = argparse.ArgumentParser(prog="needlec", description="Compile ML models to native code.",
                                     allow_abbrev=False, formatter_class=_HelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"needlec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help: str, func: Callable[[argparse.Namespace], None]) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".", allow_abbrev=False,
                            formatter_class=_HelpFormatter)
        _debug_arg(sp)
        sp.set_defaults(func=func, subparser=sp)
        return sp

    p = add("compile", "compile a model to a shared library, executable, object, LLVM IR or IR", _compile_cmd)
    _model_args(p)
    p.add_argument("-o", "--output", required=True, metavar="PATH",
                   help="the file to write; its suffix picks the artifact kind unless --emit is given")
    p.add_argument("--emit", choices=EMITS,
                   help="artifact kind (default from the output suffix: .so, .o, .ll, .nir, .loops, none or .exe "
                        "for an executable; else so)")
    p.add_argument("--header", metavar="PATH",
                   help="where to write the C header of a shared library or object (default: OUTPUT with .h)")
    p.add_argument("--name", default="needlec", metavar="PREFIX",
                   help="C symbol prefix (PREFIX_run, PREFIX_run_checked, ...; header macros upper-cased) so that "
                        "several models link into one program (default: needlec)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")
    train = p.add_argument_group("training step (--train): compile loss, gradients and optimizer update")
    train.add_argument("--train", action="store_true", help="compile one training step instead of inference")
    train.add_argument("--loss", choices=LOSSES, default="cross_entropy",
                       help="the loss between the model's output and the labels")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="the parameter update rule")
    train.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    train.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    train.add_argument("--weight-decay", type=float, default=0.0, help="weight decay of the optimizer")
    _pipeline_args(p)

    p = add("ir", "print a model's IR at every stage, or draw its data flow, kernels and memory plan", _ir_cmd)
    _model_args(p)
    p.add_argument("--stage", choices=("all", "input", "graph", "loops", "llvm"),
                   help="which IR to print: the input graph, the graph after the graph passes, the loop IR, "
                        "the optimised LLVM IR, or all of them (default: all); none when only pictures are asked for")
    p.add_argument("--full-constants", action="store_true", help="print every constant in full")
    pictures = p.add_argument_group("pictures of the compiled graph: its nodes boxed by kernel, and the memory plan")
    pictures.add_argument("--dot", metavar="PATH", help="write the picture as graphviz DOT text")
    pictures.add_argument("--svg", metavar="PATH",
                          help="write the picture as SVG (through graphviz's dot when it is on PATH, else a built-in "
                               "layered layout)")
    pictures.add_argument("--html", metavar="PATH",
                          help="write one self-contained HTML page: the SVG, a table of the kernels and the memory "
                               "plan")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    _pipeline_args(p)

    p = add("run", "run a compiled .so or a model file on .npy inputs", _run_cmd)
    _model_args(p)
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="NAME=FILE.npy, or FILE.npy for the inputs in order (as the executables take them)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="the named input's data (repeatable)")
    p.add_argument("--random-inputs", action="store_true",
                   help="run on seeded random data of each input's shape and dtype instead of files")
    p.add_argument("--seed", type=int, default=0, help="seed of --random-inputs")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="time N calls and print the latency percentiles (min, p50, p90, max); with --profile, "
                        "profile N calls")
    p.add_argument("--profile", action="store_true",
                   help="after the outputs, print each kernel's time over the --repeat runs: its graph nodes, "
                        "calls, total and mean time, share, GFLOP/s and GB/s (from static estimates)")
    p.add_argument("--profile-json", metavar="PATH",
                   help="profile (as --profile) and write a Chrome trace-event JSON of every kernel call to PATH "
                        "(open it in https://ui.perfetto.dev or chrome://tracing)")
    p.add_argument("--output-dir", metavar="DIR", help="write each output as DIR/NAME.npy")
    p.add_argument("--load-variables", metavar="FILE.npz",
                   help="start from these variables (a training step's parameters and optimizer state)")
    p.add_argument("--save-variables", metavar="FILE.npz",
                   help="write the variables after the run, so the next run (--load-variables) continues from them")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--no-cache", action="store_true",
                   help="compile an .onnx or .nir model afresh without the compile cache (see `needlec cache`)")

    p = add("cache", "show or clear the compile cache of `needlec run` (NEEDLEC_CACHE_DIR, "
                     "NEEDLEC_CACHE_MAX_BYTES)", _cache_cmd)
    p.add_argument("--clear", action="store_true", help="delete every cached library")
    p.add_argument("--info", action="store_true", help="print the location, entries and bytes (the default)")

    p = add("passes", "list a target's pipeline passes in order", _passes_cmd)
    _target_arg(p)
    add("ops", "list the primitive ops", _ops_cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "run":  # INPUTs after an option: argparse takes positionals only in the first run of them
        args.inputs += [a for a in extra if not a.startswith("-") or a == "-"]
        extra = [a for a in extra if a.startswith("-") and a != "-"]
    if extra:  # reported with the subcommand's usage, not the top level's
        args.subparser.error(f"unrecognized arguments: {' '.join(extra)}")
    handler = _logging(args)
    try:
        args.func(args)
    except InternalError as exc:  # a bug caught where it happened: its message asks for a report
        if args.debug:
            traceback.print_exc()
        print(f"needlec: {exc} (rerun with --debug)", file=sys.stderr)
        return 2
    except NeedlecError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"needlec: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`needlec ir ... | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141
    except Exception as exc:  # a bug in needlec: still one line unless --debug
        if args.debug:
            traceback.print_exc()
        message = " ".join(str(exc).split())
        print(f"needlec: internal error, please report: {type(exc).__name__}: {message} (rerun with --debug)",
              file=sys.stderr)
        return 2
    finally:
        logging.getLogger("needlec").removeHandler(handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
