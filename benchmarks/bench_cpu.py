"""Every CPU-speed target of issue 9, measured against its peer in one process: needlec ms, peer ms, ratio, target.

    python benchmarks/bench_cpu.py [--quick] [--only models|kernels|training|compile] [--models resnet50,bert]
                                   [--threads N] [--repeat N] [--small] [--json rows.json]

Sections (``--only`` takes a comma-separated list; all four by default):

- ``models``: ResNet-50, MobileNetV2, SqueezeNet 1.0, a BERT-base-shaped encoder, a
  GPT-2-small-shaped decoder (seq 128) and a 2-layer LSTM language model at batch 1,
  fp32, random weights (``cpu_models.py``; exported from PyTorch once, cached in
  ``benchmarks/.cache``), ``needlec.compile(path)`` against ONNX Runtime with
  ``--threads`` intra-op threads (one inter-op thread, sequential). Outputs are
  compared first (max |diff|); the compile time is in the notes.
- ``kernels``: SGEMM 1024^3 and 2048^3 (GFLOP/s), tanh-GELU, row softmax and row layer
  norm over 4096x4096 (GB/s, and the share of NumPy's ``np.copyto`` bandwidth timed
  in the same rounds) against NumPy. When OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set
  (they slow a current NumPy), or ``--threads`` differs from the core count, this
  section runs in a subprocess without them (and with OPENBLAS_NUM_THREADS=threads).
- ``training``: one step of the 784-256-128-10 MLP (batch 64, SGD momentum 0.9) and of a
  small CNN (two conv-BN-ReLU-maxpool blocks, batch 32 of 1x28x28, Adam) with
  ``needlec.compile_training_step`` against PyTorch eager (same weights, same batch,
  ``torch.set_num_threads(threads)``); the first two losses are compared first.
- ``compile``: cold ``needlec.compile`` of ResNet-50, BERT-base, DenseNet-121 and the
  LSTM (taken from the models section where it compiled the same file), and a
  ``needlec run MODEL --random-inputs -q`` compile-cache hit (the second of two runs
  with a fresh ``NEEDLEC_CACHE_DIR``: process start, cache load and one inference).

Timed runs of needlec and its peer alternate one call each; the medians of
both lists are reported. ``ratio`` is needlec's time over the peer's (lower is
better), so the issue's targets (``<= 1.25x``) read directly. Without
``--repeat`` each row times as many rounds as fit a few seconds (at least 3 or
5). The machines are shared and noisy: the host line prints the load average.
NEEDLEC_NUM_THREADS is set to ``--threads`` for needlec.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

BENCHMARKS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from timing import interleaved_seconds, repeats_within  # noqa: E402

SECTIONS = ("models", "kernels", "training", "compile")
GEMM_ENVIRONMENT = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # unset for the kernels section (issue 9)
DEFAULT_MODELS = ("resnet50", "mobilenetv2", "squeezenet", "bert", "gpt2", "lstm")
LATENCY_TARGET = 1.25  # needlec / ONNX Runtime, each of these models
LATENCY_TARGETS = ("resnet50", "mobilenetv2", "squeezenet", "bert", "gpt2")
COMPILE_TARGETS = {"resnet50": 8.0, "bert": 10.0, "densenet121": 20.0, "lstm": 10.0}  # seconds, cold
CACHE_HIT_TARGET = 0.5  # seconds


@dataclasses.dataclass
class Row:
    """One line of the table; times in milliseconds."""

    section: str
    name: str
    needlec_ms: float | None
    peer_ms: float | None = None
    peer: str = ""
    target: str = ""
    met: bool | None = None
    notes: str = ""
    repeats: int = 0

    @property
    def ratio(self) -> float | None:
        if self.needlec_ms is None or not self.peer_ms:
            return None
        return self.needlec_ms / self.peer_ms

    def as_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ratio": self.ratio}


@dataclasses.dataclass
class Settings:
    threads: int
    repeat: int | None  # None: as many rounds as fit ``budget`` seconds, between ``least`` and ``most``
    small: bool
    budget: float
    least: int
    most: int
    gemm_sizes: tuple[int, ...]
    size: int
    cache_model: str

    def timed(self, runs: Sequence[Callable[[], object]]) -> tuple[list[float], int]:
        """Medians (seconds) of ``runs`` timed interleaved, after one untimed warm-up round; and the rounds."""
        start = time.perf_counter()
        for run in runs:
            run()
        repeats = self.repeat or repeats_within(time.perf_counter() - start, self.budget, self.least, self.most)
        return [statistics.median(t) for t in interleaved_seconds(runs, repeats)], repeats


def say(text: str) -> None:
    """Progress on standard error (the table goes to standard output)."""
    print(text, file=sys.stderr, flush=True)


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def max_difference(got: np.ndarray, want: np.ndarray) -> str:
    """``max|diff| D (max|ref| S)``: the largest absolute difference and the reference's scale."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return f"SHAPES DIFFER {got.shape} vs {want.shape}"
    difference, scale = float(np.max(np.abs(got - want))), float(np.max(np.abs(want)))
    flag = " MISMATCH" if not difference <= 1e-3 * max(scale, 1.0) else ""
    return f"max|diff| {difference:.1e} (max|ref| {scale:.1e}){flag}"


def guarded(section: str, name: str, measure: Callable[[], Row]) -> Row:
    """``measure()``, or a row saying it failed (one broken row does not end the run)."""
    try:
        row = measure()
    except Exception as error:  # any failure is reported in the table
        traceback.print_exc()
        row = Row(section, name, None, notes=f"FAILED: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
                  if str(error) else f"FAILED: {type(error).__name__}")
    say(f"[{section}] {format_row(row)}")
    gc.collect()
    return row


# ----- host -----

def host_info(threads: int) -> dict[str, Any]:
    import llvmlite.binding as llvm

    model = "unknown"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    features = llvm.get_host_cpu_features()
    info: dict[str, Any] = {
        "cpu_model": model, "cores": available_cores(), "llvm_cpu": llvm.get_host_cpu_name(),
        "features": {f: bool(features.get(f, False)) for f in ("avx512f", "avx2", "fma")},
        "threads": threads, "load_average": [round(v, 2) for v in os.getloadavg()], "numpy": np.__version__,
        "python": sys.version.split()[0]}
    for module in ("onnxruntime", "torch"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    return info


def load_warning(info: dict[str, Any]) -> str | None:
    """A warning where the 1-minute load average (before or after) exceeds the cores, else None."""
    load = max(info["load_average"][0], info.get("load_average_after", [0.0])[0])
    if load <= info["cores"]:
        return None
    return (f"WARNING: load average {load:.2f} > {info['cores']} cores: other processes share the cores, and thread "
            f"pools waiting at barriers (ONNX Runtime, PyTorch, OpenBLAS, needlec's) suffer most, so peer times and "
            f"ratios are distorted; compare on a quiet machine or with --threads 1")


def host_line(info: dict[str, Any]) -> str:
    features = " ".join(f"{f}={'yes' if on else 'no'}" for f, on in info["features"].items())
    load = " ".join(f"{v:.2f}" for v in info["load_average"])
    return (f"host: {info['cpu_model']}, {info['cores']} cores, LLVM host CPU {info['llvm_cpu']} ({features}); "
            f"onnxruntime {info['onnxruntime']}, torch {info['torch']}, numpy {info['numpy']}; "
            f"{info['threads']} threads; load average {load} (shared, noisy machine: read medians and ratios)")


# ----- models -----

def bench_models(settings: Settings, keys: Iterable[str], compile_seconds: dict[str, float]) -> list[Row]:
    """One row per model; ``compile_seconds`` gets each model's compile time (for the compile section)."""
    from cpu_models import MODELS

    rows = []
    for key in keys:
        spec = MODELS[key]
        label = spec.label(settings.small)
        rows.append(guarded("models", label, lambda spec=spec, label=label: model_row(settings, spec, label,
                                                                                       compile_seconds)))
    return rows


def model_row(settings: Settings, spec: Any, label: str, compile_seconds: dict[str, float]) -> Row:
    import needlec
    from tests.onnx_models import onnxruntime_session

    path = spec.onnx_path(settings.small)
    start = time.perf_counter()
    compiled = needlec.compile(str(path), progress=False)
    compile_seconds[compile_key(spec, settings.small)] = seconds = time.perf_counter() - start
    session = onnxruntime_session(path, settings.threads)
    x = spec.example_input()
    feed = {session.get_inputs()[0].name: x}
    ours, theirs = compiled(x), session.run(None, feed)[0]
    check = max_difference(ours[0] if isinstance(ours, tuple) else ours, theirs)
    (needlec_s, ort_s), repeats = settings.timed([lambda: compiled(x), lambda: session.run(None, feed)])
    target, met = "", None
    if spec.key in LATENCY_TARGETS:
        target, met = f"<= {LATENCY_TARGET}x", needlec_s / ort_s <= LATENCY_TARGET
    return Row("models", label, needlec_s * 1e3, ort_s * 1e3, "onnxruntime", target, met,
               f"compile {seconds:.1f} s; {check}", repeats)


def compile_key(spec: Any, small: bool) -> str:
    return f"{spec.key}:{'small' if small and spec.small_title else 'full'}"


# ----- kernels -----

def gelu_numpy(x: np.ndarray) -> np.ndarray:
    c, k, half = np.float32(0.79788456), np.float32(0.044715), np.float32(0.5)
    return half * x * (1 + np.tanh(c * (x + k * x ** 3)))


def softmax_numpy(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def layer_norm_numpy(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(variance + np.float32(eps)) * weight + bias


def bench_kernels(settings: Settings) -> list[Row]:
    rows = [guarded("kernels", f"SGEMM {n}^3", lambda n=n: gemm_row(settings, n)) for n in settings.gemm_sizes]
    return rows + bandwidth_rows(settings)


def gemm_row(settings: Settings, n: int) -> Row:
    import needlec

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    start = time.perf_counter()
    compiled = needlec.compile(lambda a, b: a @ b, [a, b], progress=False)
    seconds = time.perf_counter() - start
    check = max_difference(compiled(a, b), a @ b)
    (ours, theirs), repeats = settings.timed([lambda: compiled(a, b), lambda: a @ b])
    flops = 2.0 * n ** 3
    return Row("kernels", f"SGEMM {n}^3", ours * 1e3, theirs * 1e3, "numpy", "<= 1.11x (>= 0.9x GFLOP/s)",
               theirs / ours >= 0.9,
               f"{flops / ours / 1e9:.1f} vs {flops / theirs / 1e9:.1f} GFLOP/s; compile {seconds:.1f} s; {check}",
               repeats)


def bandwidth_rows(settings: Settings) -> list[Row]:
    """tanh-GELU, row softmax and row layer norm: GB/s (one read, one write) against np.copyto's, same rounds."""
    import needlec
    from needlec import ops

    n = settings.size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, n), dtype=np.float32)
    weight, bias = (rng.standard_normal(n, dtype=np.float32) for _ in range(2))
    copy_target = np.empty_like(x)

    def gelu(x: Any) -> Any:
        return 0.5 * x * (1 + ops.tanh(0.79788456 * (x + 0.044715 * x ** 3)))

    cases: list[tuple[str, Callable[..., Any], Callable[..., Any], tuple[np.ndarray, ...], float]] = [
        (f"tanh-GELU {n}x{n}", gelu, gelu_numpy, (x,), 0.7),
        (f"softmax rows {n}x{n}", lambda x: ops.softmax(x, -1), softmax_numpy, (x,), 0.5),
        (f"layer norm rows {n}x{n}", lambda x, w, b: ops.layer_norm(x, n, w, b), layer_norm_numpy,
         (x, weight, bias), 0.5),
    ]
    moved = 2 * x.nbytes  # the least one pass can move: read x, write the result

    def row(name: str, fn: Callable[..., Any], peer: Callable[..., Any], args: tuple[np.ndarray, ...],
            share: float) -> Row:
        start = time.perf_counter()
        compiled = needlec.compile(fn, list(args), progress=False)
        seconds = time.perf_counter() - start
        check = max_difference(compiled(*args), peer(*args))
        (ours, theirs, copy), repeats = settings.timed(
            [lambda: compiled(*args), lambda: peer(*args), lambda: np.copyto(copy_target, x)])
        achieved = (moved / ours) / (moved / copy)
        return Row("kernels", name, ours * 1e3, theirs * 1e3, "numpy", f">= {share:.0%} copy GB/s", achieved >= share,
                   f"{moved / ours / 1e9:.1f} GB/s = {achieved:.0%} of copy {moved / copy / 1e9:.1f} GB/s, numpy "
                   f"{moved / theirs / 1e9:.1f}; compile {seconds:.1f} s; {check}", repeats)

    return [guarded("kernels", case[0], lambda case=case: row(*case)) for case in cases]


def kernels_in_subprocess(settings: Settings, argv: list[str]) -> list[Row] | None:
    """Rerun the kernels section in a child without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE and with
    OPENBLAS_NUM_THREADS=threads, where either matters; None where the child is not needed."""
    unset = [name for name in GEMM_ENVIRONMENT if name in os.environ]
    if not unset and settings.threads == available_cores() and "OPENBLAS_NUM_THREADS" not in os.environ:
        return None
    environment = {k: v for k, v in os.environ.items() if k not in GEMM_ENVIRONMENT}
    environment["OPENBLAS_NUM_THREADS"] = str(settings.threads)
    say(f"[kernels] in a subprocess: unset {', '.join(unset) or 'nothing'}, OPENBLAS_NUM_THREADS={settings.threads}")
    with tempfile.TemporaryDirectory() as directory:
        rows_file = pathlib.Path(directory) / "kernels.json"
        subprocess.run([sys.executable, __file__, *argv, "--only", "kernels", "--child-json", str(rows_file)],
                       env=environment, check=True, stdout=subprocess.DEVNULL)
        rows = [Row(**{k: v for k, v in row.items() if k != "ratio"}) for row in json.loads(rows_file.read_text())]
    for row in rows:
        row.notes += f"; subprocess without {', '.join(unset)}" if unset else ""
    return rows


# ----- training -----

MLP_SIZES = (784, 256, 128, 10)


def torch_mlp() -> Any:
    import torch

    layers: list[Any] = []
    for fan_in, fan_out in zip(MLP_SIZES, MLP_SIZES[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def needlec_mlp() -> Any:
    from needlec import nn

    layers: list[Any] = []
    for fan_in, fan_out in zip(MLP_SIZES, MLP_SIZES[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def small_cnn(nn: Any) -> Any:
    """Two conv-BN-ReLU-maxpool blocks (1->16->32 channels, 28 -> 14 -> 7) and a linear head, from ``nn``
    (``torch.nn`` or ``needlec.nn``: the same state_dict names)."""
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def bench_training(settings: Settings) -> list[Row]:
    import torch

    torch.set_num_threads(settings.threads)
    return [guarded("training", "MLP 784-256-128-10 b64 SGD-m", lambda: training_row(settings, "mlp")),
            guarded("training", "CNN 2x(conv-BN-ReLU-pool) b32 Adam", lambda: training_row(settings, "cnn"))]


def training_row(settings: Settings, kind: str) -> Row:
    import torch

    import needlec
    from needlec import nn, optim

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if kind == "mlp":
        name, batch, target = "MLP 784-256-128-10 b64 SGD-m", 64, 0.5
        theirs, ours = torch_mlp(), needlec_mlp()
        x = rng.standard_normal((batch, MLP_SIZES[0]), dtype=np.float32)
        torch_opt: Any = torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9)
        ours_opt: Any = optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
    else:
        name, batch, target = "CNN 2x(conv-BN-ReLU-pool) b32 Adam", 32, 1.0
        theirs, ours = small_cnn(torch.nn), small_cnn(nn)
        x = rng.standard_normal((batch, 1, 28, 28), dtype=np.float32)
        torch_opt, ours_opt = torch.optim.Adam(theirs.parameters(), lr=1e-3), optim.Adam(ours.parameters(), lr=1e-3)
    y = rng.integers(0, 10, batch).astype(np.int64)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    start = time.perf_counter()
    step = needlec.compile_training_step(ours, nn.CrossEntropyLoss(), ours_opt, (x, y), progress=False)
    seconds = time.perf_counter() - start
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def torch_step() -> float:
        torch_opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(theirs(tx), ty)
        loss.backward()
        torch_opt.step()
        return float(loss.item())

    losses = [(float(step.step(x, y)), torch_step()) for _ in range(2)]
    worst = max(abs(a - b) / max(abs(b), 1e-12) for a, b in losses)
    check = f"first 2 losses rel diff {worst:.1e}" + (" MISMATCH" if worst > 1e-3 else "")
    (ours_s, theirs_s), repeats = settings.timed([lambda: step.step(x, y), torch_step])
    return Row("training", name, ours_s * 1e3, theirs_s * 1e3, "pytorch eager", f"<= {target}x",
               ours_s / theirs_s <= target, f"compile {seconds:.1f} s; {check}", repeats)


# ----- compile -----

def bench_compile(settings: Settings, keys: Iterable[str], compile_seconds: dict[str, float]) -> list[Row]:
    from cpu_models import MODELS

    rows = []
    for key in keys:
        spec = MODELS[key]
        label = f"compile {spec.label(settings.small)}"
        rows.append(guarded("compile", label, lambda spec=spec, label=label: compile_row(settings, spec, label,
                                                                                         compile_seconds)))
    rows.append(guarded("compile", "needlec run cache hit", lambda: cache_hit_row(settings)))
    return rows


def compile_row(settings: Settings, spec: Any, label: str, compile_seconds: dict[str, float]) -> Row:
    import needlec

    known = compile_seconds.get(compile_key(spec, settings.small))
    notes = "from the models section"
    if known is None:
        path = spec.onnx_path(settings.small)
        start = time.perf_counter()
        needlec.compile(str(path), progress=False)
        known, notes = time.perf_counter() - start, ""
    limit = COMPILE_TARGETS[spec.key]
    if settings.small and spec.small_title:  # not the configuration: no verdict
        return Row("compile", label, known * 1e3, target=f"<= {limit:g} s (12 layers)", notes=notes)
    return Row("compile", label, known * 1e3, target=f"<= {limit:g} s", met=known <= limit, notes=notes)


def needlec_command() -> list[str]:
    script = pathlib.Path(sys.executable).with_name("needlec")
    if script.exists():
        return [str(script)]
    found = shutil.which("needlec")
    return [found] if found else [sys.executable, "-c", "import sys; from needlec.cli import main; sys.exit(main())"]


def cache_hit_row(settings: Settings) -> Row:
    """``needlec run MODEL --random-inputs -q`` twice with a fresh cache folder; the second run is the hit."""
    from cpu_models import MODELS

    spec = MODELS[settings.cache_model]
    path = spec.onnx_path(settings.small)
    with tempfile.TemporaryDirectory() as directory:
        environment = {**os.environ, "NEEDLEC_CACHE_DIR": directory}
        times = []
        for _ in range(2):
            start = time.perf_counter()
            subprocess.run([*needlec_command(), "run", str(path), "--random-inputs", "-q"], env=environment,
                           check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
    return Row("compile", f"needlec run cache hit ({spec.label(settings.small)})", times[1] * 1e3,
               target=f"<= {CACHE_HIT_TARGET:g} s", met=times[1] <= CACHE_HIT_TARGET,
               notes=f"second run: process start, cache load, one inference; first (cold) run {times[0]:.1f} s",
               repeats=1)


# ----- table -----

def milliseconds(value: float | None) -> str:
    if value is None:
        return "-"
    digits = 0 if value >= 100 else 1 if value >= 10 else 2 if value >= 1 else 3
    return f"{value:.{digits}f}"


def format_row(row: Row) -> str:
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
    met = {None: "-", True: "yes", False: "NO"}[row.met]
    return (f"{row.name:<38} {milliseconds(row.needlec_ms):>10} {row.peer or '-':>13} {milliseconds(row.peer_ms):>9} "
            f"{ratio:>8} {row.target or '-':>27} {met:>4} {row.repeats or '-':>3}  {row.notes}")


def print_table(rows: Sequence[Row]) -> None:
    print(f"{'name':<38} {'needlec ms':>10} {'peer':>13} {'peer ms':>9} {'ratio':>8} {'target':>27} {'met':>4} "
          f"{'n':>3}  notes")
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            print(f"-- {section}")
        print(format_row(row))
    judged = [row for row in rows if row.met is not None]
    print(f"targets met: {sum(bool(row.met) for row in judged)} of {len(judged)} judged "
          f"(ratio = needlec time / peer time, lower is better; medians of n interleaved rounds)")


# ----- command line -----

def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections among {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--models", help=f"comma-separated models of the models and compile sections (default: "
                                         f"{','.join(DEFAULT_MODELS)}; also densenet121, test-resnet, ...)")
    parser.add_argument("--threads", type=int, default=available_cores(),
                        help="threads of ONNX Runtime, PyTorch, NumPy's BLAS and needlec (default: available cores)")
    parser.add_argument("--repeat", type=int, help="timed rounds per row (default: as many as fit a few seconds)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and 4-layer transformers")
    parser.add_argument("--small", action="store_true", help="4-layer BERT and GPT-2 (implied by --quick)")
    parser.add_argument("--gemm-sizes", default="1024,2048", help="SGEMM sizes (default: 1024,2048)")
    parser.add_argument("--size", type=int, default=4096, help="rows and columns of the bandwidth kernels")
    parser.add_argument("--cache-model", default="mobilenetv2", help="model of the cache-hit row")
    parser.add_argument("--json", type=pathlib.Path, help="write the host and the rows as JSON here")
    parser.add_argument("--child-json", type=pathlib.Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run(args: argparse.Namespace, argv: Sequence[str]) -> tuple[dict[str, Any], list[Row]]:
    """Run the chosen sections; the host information and the rows."""
    from cpu_models import MODELS

    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    models = [m.strip() for m in args.models.split(",")] if args.models else None
    unknown += [m for m in models or () if m not in MODELS]
    if unknown:
        raise SystemExit(f"bench_cpu: unknown section or model: {', '.join(unknown)}")
    quick = args.quick
    settings = Settings(threads=args.threads, repeat=args.repeat, small=quick or args.small,
                        budget=4.0 if quick else 12.0, least=3 if quick else 5, most=10 if quick else 50,
                        gemm_sizes=tuple(int(n) for n in args.gemm_sizes.split(",") if n),
                        size=args.size, cache_model=args.cache_model)
    os.environ["NEEDLEC_NUM_THREADS"] = str(args.threads)
    info = host_info(args.threads)
    if args.child_json is None:
        say(host_line(info))
        warning = load_warning(info)
        if warning:
            say(warning)
    rows: list[Row] = []
    compile_seconds: dict[str, float] = {}
    if "models" in sections:
        rows += bench_models(settings, models or DEFAULT_MODELS, compile_seconds)
    if "kernels" in sections:
        child = None if args.child_json is not None else kernels_in_subprocess(settings, list(argv))
        rows += bench_kernels(settings) if child is None else child
    if "training" in sections:
        rows += bench_training(settings)
    if "compile" in sections:
        keys = [key for key in COMPILE_TARGETS if models is None or key in models]
        rows += bench_compile(settings, keys, compile_seconds)
    return info, rows


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_arguments(argv)
    started = time.perf_counter()
    info, rows = run(args, strip_only(argv))
    if args.child_json is not None:
        args.child_json.write_text(json.dumps([row.as_json() for row in rows]))
        return 0
    info["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(host_line(info))
    print_table(rows)
    print(f"({time.perf_counter() - started:.0f} s in all; load average after "
          f"{' '.join(f'{v:.2f}' for v in info['load_average_after'])})")
    warning = load_warning(info)
    if warning:
        print(warning)
    if args.json is not None:
        args.json.write_text(json.dumps({"host": info, "rows": [row.as_json() for row in rows]}, indent=1))
    return 0 if all(not row.notes.startswith("FAILED") for row in rows) else 1


def strip_only(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--only``/``--json`` and their values (the kernels child gets its own)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--only", "--json"):
            skip = True
        elif not arg.startswith(("--only=", "--json=")):
            kept.append(arg)
    return kept


if __name__ == "__main__":
    sys.exit(main())
