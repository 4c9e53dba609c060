"""Fuzz needlec's ONNX import and compilation with seeded mutants of the ONNX node-test models.

    python tools/fuzz_onnx.py --mutants 10000 --seed 1 --workers 1 --out DIR [--small] [--no-compare] [--save-clean]
    python tools/fuzz_onnx.py --seed 1 --index 1234 [--small] [--out DIR]     # rebuild and run one mutant

Prints progress on standard error, then the counts per outcome and per
mutation kind and each distinct failing signature (outcome, op, message with
names and numbers masked). With ``--out``, one reproducer folder per distinct
failing or mismatching signature (clean errors too with ``--save-clean``):
model.onnx, files beside it, inputs.npz, info.json; plus ``summary.txt``.
Exits 1 when any mutant crashed, hung, ran out of memory, or failed with an
internal or multi-line error. The mutator and the isolated runner are
``tests/onnx_fuzz.py`` and ``tests/onnx_fuzz_runner.py``.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from tests.onnx_fuzz import SMALL_MODULES, load_cases, make_mutant  # noqa: E402
from tests.onnx_fuzz_runner import FAILURES, TIMEOUT_S, Summary, run_mutants, save_reproducer  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=int, default=1000, help="how many mutants (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="run seed (default 1)")
    parser.add_argument("--start", type=int, default=0, help="index of the first mutant (default 0)")
    parser.add_argument("--index", type=int, help="run only mutant INDEX of the seed and print it")
    parser.add_argument("--workers", type=int, default=1, help="isolated worker processes (default 1)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help=f"seconds per mutant (default {TIMEOUT_S:g})")
    parser.add_argument("--out", type=pathlib.Path, help="folder for reproducers and summary.txt")
    parser.add_argument("--save-clean", action="store_true", help="also save one reproducer per clean error")
    parser.add_argument("--small", action="store_true", help="only the small node tests the test suite fuzzes")
    parser.add_argument("--no-compare", action="store_true", help="do not compare with ONNX Runtime")
    return parser.parse_args(argv)


def regenerate_command(args: argparse.Namespace, index: int) -> str:
    return f"python tools/fuzz_onnx.py --seed {args.seed} --index {index}" + (" --small" if args.small else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    cases = load_cases(SMALL_MODULES if args.small else None)
    print(f"{len(cases)} cases loaded in {time.monotonic() - began:.1f} s", file=sys.stderr)
    indices = [args.index] if args.index is not None else range(args.start, args.start + args.mutants)
    mutants = (make_mutant(cases, args.seed, i) for i in indices)
    summary = Summary()
    began = time.monotonic()
    last_report = began
    for done, (mutant, outcome) in enumerate(run_mutants(mutants, args.workers, args.timeout,
                                                         not args.no_compare), 1):
        new = summary.add(mutant, outcome)
        if args.index is not None:
            print(f"{mutant.label}\n  op {mutant.op}\n  outcome {outcome}")
        if new and args.out is not None and (outcome.kind in (*FAILURES, "mismatch") or
                                             args.save_clean and outcome.kind == "clean_error"):
            save_reproducer(mutant, outcome, args.out, regenerate_command(args, mutant.index))
        if new and outcome.kind in FAILURES:
            print(f"new {outcome.kind}: {mutant.label} (phase {outcome.phase}): {outcome.message[:200]!r}",
                  file=sys.stderr)
        now = time.monotonic()
        if now - last_report >= 10 or done == len(indices):
            rate = done / (now - began)
            eta = (len(indices) - done) / rate if rate else 0
            print(f"[{done}/{len(indices)}] {rate:.1f}/s, {now - began:.0f} s elapsed, ETA {eta:.0f} s: "
                  f"{summary.counts_line()}", file=sys.stderr)
            last_report = now
    report = "\n\n".join([f"{len(indices)} mutants, seed {args.seed}, {time.monotonic() - began:.0f} s: "
                          f"{summary.counts_line()}", summary.mutation_table(),
                          "failing messages (all ops):\n" + (summary.failing_messages() or "none"),
                          "failing signatures (per op):\n" + (summary.failing_signatures() or "none")])
    print(report)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "summary.txt").write_text(report + "\n")
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
