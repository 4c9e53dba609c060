"""ONNX models at batch 1: needlec (JIT) vs ONNX Runtime (CPU, 1 and 2 threads), same run.

    python benchmarks/bench_onnx.py [--repeat 50] [--models resnet mobilenet transformer]

The models are the ResNet-style CNN, MobileNet-style CNN and transformer
encoder of ``tests/onnx_models.py``, exported from PyTorch (needs torch and
onnxruntime, the test extra). For each model it prints the import and compile
time, needlec's median latency, ONNX Runtime's with 1 and 2 intra-op threads,
and needlec's speed relative to each (ORT time / needlec time: >1 means
needlec is faster), plus the largest output difference as a sanity check.
Machines are shared and noisy: read medians and ratios.
"""
from __future__ import annotations

import argparse
import functools
import pathlib
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the model builders live with the tests

from timing import median_seconds  # noqa: E402

import needlec  # noqa: E402
from tests.onnx_models import INPUT_NAME, MODELS, onnxruntime_session  # noqa: E402

BATCH = 1
THREADS = (1, 2)


def bench_model(name: str, directory: pathlib.Path, repeat: int) -> None:
    """Export, compile and time one model; print one block of lines."""
    spec = MODELS[name]
    path = spec.export(directory / f"{name}.onnx", BATCH)
    x = spec.example_input(BATCH, seed=1)
    start = time.perf_counter()
    graph = needlec.from_onnx(str(path))
    imported = time.perf_counter()
    compiled = needlec.compile(graph, progress=False)
    done = time.perf_counter()
    print(f"{name}: import {imported - start:6.2f} s   compile {done - imported:6.2f} s")
    ours = median_seconds(lambda: compiled(x), repeats=repeat)
    print(f"{name}: needlec            {ours * 1e3:9.3f} ms")
    got = compiled(x)
    for threads in THREADS:
        session = onnxruntime_session(path, threads)
        feed = {INPUT_NAME: x}
        theirs = median_seconds(functools.partial(session.run, None, feed), repeats=repeat)
        difference = float(np.max(np.abs(got - session.run(None, feed)[0])))
        print(f"{name}: onnxruntime {threads} thr {theirs * 1e3:9.3f} ms   needlec speed ratio "
              f"{theirs / ours:6.3g}x   max |diff| {difference:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        for name in args.models:
            bench_model(name, pathlib.Path(directory), args.repeat)


if __name__ == "__main__":
    main()
