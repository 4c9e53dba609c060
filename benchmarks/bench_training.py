"""Benchmark: one MLP training step, needlec's compiled step against PyTorch eager on the CPU.

    python benchmarks/bench_training.py [--batch 64] [--repeats 50]

The step is forward, cross-entropy loss, backward and an SGD-with-momentum
update of a 784-256-128-10 ReLU MLP. Both sides start from the same weights
and see the same batch; the first losses are compared as a sanity check.
PyTorch runs with its default thread count and again with one thread. Each
figure is the median of ``repeats`` timed steps after ``warmup`` untimed ones.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from timing import median_seconds

import needlec
from needlec import nn, optim

SIZES = (784, 256, 128, 10)
LR, MOMENTUM = 0.01, 0.9


def torch_mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for fan_in, fan_out in zip(SIZES, SIZES[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def needlec_mlp(weights: dict[str, np.ndarray]) -> nn.Module:
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(SIZES, SIZES[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    model.load_state_dict(weights)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], args.batch).astype(np.int64)

    theirs = torch_mlp()
    ours = needlec_mlp({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    start = time.perf_counter()
    step = needlec.compile_training_step(ours, nn.CrossEntropyLoss(),
                                         optim.SGD(ours.parameters(), lr=LR, momentum=MOMENTUM), (x, y))
    compile_seconds = time.perf_counter() - start

    torch_opt = torch.optim.SGD(theirs.parameters(), lr=LR, momentum=MOMENTUM)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def torch_step() -> float:
        torch_opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(theirs(tx), ty)
        loss.backward()
        torch_opt.step()
        return loss.item()

    first_ours, first_theirs = step.step(x, y), torch_step()
    if not np.isclose(first_ours, first_theirs, rtol=1e-4):
        raise SystemExit(f"first losses differ: needlec {first_ours}, PyTorch {first_theirs}")

    ours_s = median_seconds(lambda: step.step(x, y), args.warmup, args.repeats)
    default_threads = torch.get_num_threads()
    torch_default_s = median_seconds(torch_step, args.warmup, args.repeats)
    torch.set_num_threads(1)
    torch_single_s = median_seconds(torch_step, args.warmup, args.repeats)
    torch.set_num_threads(default_threads)

    print(f"MLP {'-'.join(map(str, SIZES))}, batch {args.batch}, SGD momentum {MOMENTUM}: one training step "
          f"(median of {args.repeats})")
    print(f"  needlec compile_training_step: compiled in {compile_seconds:.1f} s")
    print(f"  {'needlec compiled step':<32} {ours_s * 1e3:8.3f} ms")
    for label, seconds in ((f"PyTorch eager, {default_threads} thread(s)", torch_default_s),
                           ("PyTorch eager, 1 thread", torch_single_s)):
        print(f"  {label:<32} {seconds * 1e3:8.3f} ms   needlec / PyTorch = {ours_s / seconds:.2f}")


if __name__ == "__main__":
    main()
