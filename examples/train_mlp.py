"""Train an MLP on three interleaved 2-D spirals with a compiled training step.

    python examples/train_mlp.py

``needlec.compile_training_step`` compiles forward pass, backward pass and
Adam update into one native function; the loop below only shuffles the data
and feeds batches. Afterwards the trained weights go back into the Module,
which is compiled again for inference to measure the training accuracy.
"""
from __future__ import annotations

import time

import numpy as np

import needlec
from needlec import nn, optim

CLASSES = 3
POINTS_PER_CLASS = 192
BATCH = 64


def spirals(points_per_class: int = POINTS_PER_CLASS, classes: int = CLASSES, noise: float = 0.2,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` spiral arms in the plane: points (N, 2) float32 and labels (N,) int64."""
    rng = np.random.default_rng(seed)
    radius = np.linspace(0.05, 1.0, points_per_class)
    points, labels = [], []
    for k in range(classes):
        angle = np.linspace(k * 4.0, (k + 1) * 4.0, points_per_class) + rng.normal(0.0, noise, points_per_class)
        points.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        labels.append(np.full(points_per_class, k))
    return np.concatenate(points).astype(np.float32), np.concatenate(labels).astype(np.int64)


def main(epochs: int = 40, seed: int = 0, verbose: bool = True) -> float:
    """Train for ``epochs`` passes over the data; print the loss per epoch; return the training accuracy."""
    x, y = spirals(seed=seed)
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(2, 64, rng=rng), nn.ReLU(), nn.Linear(64, 64, rng=rng), nn.ReLU(),
                          nn.Linear(64, CLASSES, rng=rng))
    start = time.perf_counter()
    step = needlec.compile_training_step(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.01),
                                         (x[:BATCH], y[:BATCH]))
    if verbose:
        print(f"compiled the training step in {time.perf_counter() - start:.1f} s")
    batches = len(x) // BATCH
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        losses = [step.step(x[idx], y[idx]) for idx in np.split(order[:batches * BATCH], batches)]
        if verbose:
            print(f"epoch {epoch + 1:3d}  loss {np.mean(losses):.4f}")
    step.sync_to_model()
    logits = needlec.compile(model, (x,))(x)
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y))
    if verbose:
        print(f"training accuracy {accuracy:.1%}")
    return accuracy


if __name__ == "__main__":
    main()
