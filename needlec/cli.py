"""The ``needlec`` command: compile, run, inspect IR, list passes and ops.

Every user error prints one line (``needlec: error: ...``) and exits 1;
``--debug`` shows the traceback. Internal errors exit 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Sequence

import numpy as np

from needlec.errors import NeedlecError

EMITS = ("so", "obj", "llvm", "ir", "loops")


def _pipeline_args(p: argparse.ArgumentParser) -> None:
    from needlec.compiler.passes import PASS_NAMES

    p.add_argument("--print-after-all", action="store_true", help="print the IR after every pass")
    p.add_argument("--print-after", action="append", default=[], metavar="PASS", choices=PASS_NAMES,
                   help="print the IR after PASS (repeatable)")
    p.add_argument("--dump-dir", metavar="DIR", help="also write each printed IR to DIR/NN-pass.txt")
    p.add_argument("--check-numerics", action="store_true",
                   help="compare every graph pass's result with the reference interpreter")
    p.add_argument("--no-verify", action="store_true", help="skip the verifier between passes")
    p.add_argument("--timing", action="store_true", help="print the time spent in each pass")


def _options(args: argparse.Namespace) -> dict:
    return {"print_after": frozenset(args.print_after), "print_after_all": args.print_after_all,
            "dump_dir": args.dump_dir, "check_numerics": args.check_numerics,
            "verify_each": not args.no_verify, "timing": args.timing, "stream": sys.stdout}


LOSSES = ("cross_entropy", "mse", "bce_with_logits")
OPTIMIZERS = ("sgd", "adam", "adamw")


def _compile_training_cmd(args: argparse.Namespace) -> None:
    """``compile --train``: one training step of the model as a shared library plus a C header."""
    import needlec
    from needlec.models import load_trainable_model
    from needlec.training import compile_training_step

    model, inputs = load_trainable_model(args.model)
    output = needlec.trace(model, *inputs).outputs
    if len(output) != 1 or not output[0].dtype.is_float:
        raise NeedlecError(f"--train needs a model with one float output, found {len(output)} output(s)")
    out = output[0]
    if args.loss == "cross_entropy":
        if out.type.rank < 2:
            raise NeedlecError(f"--loss cross_entropy needs (batch, classes, ...) logits, found shape {out.shape}")
        target = np.zeros(out.shape[:1] + out.shape[2:], np.int64)
        loss_fn = needlec.losses.cross_entropy
    else:
        target = np.zeros(out.shape, out.dtype.np)
        loss_fn = needlec.losses.mse_loss if args.loss == "mse" else needlec.losses.binary_cross_entropy_with_logits
    optimizers = {"sgd": lambda p: needlec.optim.SGD(p, lr=args.lr, momentum=args.momentum,
                                                     weight_decay=args.weight_decay),
                  "adam": lambda p: needlec.optim.Adam(p, lr=args.lr, weight_decay=args.weight_decay),
                  "adamw": lambda p: needlec.optim.AdamW(p, lr=args.lr, weight_decay=args.weight_decay)}
    step = compile_training_step(model, loss_fn, optimizers[args.optimizer](model.parameters()),
                                 (inputs, (target,)), **_options(args))
    library, header = step.export(args.output)
    if not args.quiet:
        print(f"wrote {library} and {header} (training step: {len(step.parameter_names)} parameter tensor(s), "
              f"loss {args.loss}, optimizer {args.optimizer}, lr {args.lr})", file=sys.stderr)


def _compile_cmd(args: argparse.Namespace) -> None:
    from needlec.compiler.ir.printer import print_graph
    from needlec.compiler.loops.printer import print_program
    from needlec.compiler.pipeline import Pipeline, PipelineOptions
    from needlec.models import load_model_file
    from needlec.runtime.library import emit_object, export_shared, llvm_text

    if args.target != "cpu":
        raise NeedlecError(f"unknown target {args.target!r}; available: cpu")
    if args.train:
        _compile_training_cmd(args)
        return
    graph = load_model_file(args.model)
    result = Pipeline(PipelineOptions(**_options(args))).run(graph)
    emit = args.emit or _emit_from_suffix(args.output)
    if emit == "so":
        export_shared(result.program, args.output)
    else:
        if emit == "obj":
            data: bytes | str = emit_object(result.program)
        elif emit == "llvm":
            data = llvm_text(result.program)
        elif emit == "ir":
            data = print_graph(result.graph)
        else:
            data = print_program(result.program)
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(args.output, mode) as f:
            f.write(data)
    if not args.quiet:
        print(f"wrote {args.output} ({emit}, {os.path.getsize(args.output)} bytes)", file=sys.stderr)


def _emit_from_suffix(path: str) -> str:
    suffix = os.path.splitext(path)[1]
    return {".so": "so", ".o": "obj", ".ll": "llvm", ".nir": "ir", ".loops": "loops"}.get(suffix, "so")


def _ir_cmd(args: argparse.Namespace) -> None:
    from needlec.compiler.ir.printer import print_graph
    from needlec.compiler.loops.printer import print_program
    from needlec.compiler.pipeline import Pipeline, PipelineOptions
    from needlec.models import load_model_file
    from needlec.runtime.library import llvm_text

    graph = load_model_file(args.model)
    stages = ("input", "graph", "loops", "llvm") if args.stage == "all" else (args.stage,)
    elide = None if args.full_constants else 16
    if "input" in stages:
        print(f"// ----- input graph -----\n{print_graph(graph, elide_constants=elide)}")
    options = _options(args)
    options["elide_constants"] = elide
    result = Pipeline(PipelineOptions(**options)).run(graph)
    if "graph" in stages:
        print(f"// ----- graph after the last graph pass -----\n{print_graph(result.graph, elide_constants=elide)}")
    if "loops" in stages:
        print(f"// ----- loop IR -----\n{print_program(result.program)}")
    if "llvm" in stages:
        print(f"// ----- LLVM IR (optimised) -----\n{llvm_text(result.program)}")


def _parse_inputs(items: Sequence[str]) -> dict[str, np.ndarray]:
    inputs: dict[str, np.ndarray] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise NeedlecError(f"--input expects NAME=FILE.npy, found {item!r}")
        try:
            inputs[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise NeedlecError(f"cannot read input {name} from {path}: {exc}") from None
    return inputs


def _run_cmd(args: argparse.Namespace) -> None:
    import needlec
    from needlec.models import load_model_file

    if args.model.endswith(".so"):
        runner = needlec.load(args.model)
    else:
        runner = needlec.compile(load_model_file(args.model))
    outputs = runner(**_parse_inputs(args.input))
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
    for spec, value in zip(runner.signature.outputs, outputs):
        if args.output_dir:
            path = os.path.join(args.output_dir, f"{spec.name}.npy")
            np.save(path, value)
            print(f"{spec.describe()} -> {path}")
        else:
            print(f"{spec.describe()} =\n{np.array2string(value, threshold=64)}")


def _passes_cmd(args: argparse.Namespace) -> None:
    from needlec.compiler.passes import PASSES

    for i, p in enumerate(PASSES):
        print(f"{i:2d}. {p.name:<22}[{p.kind}] {p.doc}")


def _ops_cmd(args: argparse.Namespace) -> None:
    from needlec.compiler.ops.registry import all_ops

    for name, op in sorted(all_ops().items()):
        attrs = ", ".join(f"{k}: {a.kind}" for k, a in op.attrs.items())
        arity = "*" if op.arity is None else str(op.arity)
        print(f"{name:<16}({arity}) {'{' + attrs + '} ' if attrs else ''}{'[view] ' if op.is_view else ''}{op.doc}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="needlec", description="Compile ML models to native code.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compile", help="compile a model to a shared library (or object, LLVM IR, graph IR)")
    p.add_argument("model", help="a Python model file (defines model, example_inputs) or a .nir IR file")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--target", default="cpu")
    p.add_argument("--emit", choices=EMITS, help="artifact kind (default: from the output suffix, else so)")
    p.add_argument("-q", "--quiet", action="store_true")
    train = p.add_argument_group("training step (--train): compile loss, gradients and optimizer update")
    train.add_argument("--train", action="store_true", help="compile one training step instead of inference")
    train.add_argument("--loss", choices=LOSSES, default="cross_entropy")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    train.add_argument("--weight-decay", type=float, default=0.0)
    _pipeline_args(p)
    p.set_defaults(func=_compile_cmd)

    p = sub.add_parser("ir", help="print a model's IR at every stage")
    p.add_argument("model")
    p.add_argument("--stage", choices=("all", "input", "graph", "loops", "llvm"), default="all")
    p.add_argument("--full-constants", action="store_true", help="print every constant in full")
    _pipeline_args(p)
    p.set_defaults(func=_ir_cmd)

    p = sub.add_parser("run", help="run a compiled .so or a model file on .npy inputs")
    p.add_argument("model")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    p.add_argument("--output-dir", metavar="DIR", help="write each output as DIR/NAME.npy")
    p.set_defaults(func=_run_cmd)

    sub.add_parser("passes", help="list the pipeline's passes in order").set_defaults(func=_passes_cmd)
    sub.add_parser("ops", help="list the primitive ops").set_defaults(func=_ops_cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except NeedlecError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"needlec: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug in needlec: still one line unless --debug
        if args.debug:
            traceback.print_exc()
        print(f"needlec: internal error: {type(exc).__name__}: {exc} (rerun with --debug)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
