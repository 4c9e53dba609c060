"""A small convolutional classifier for 1x28x28 images, ready for the CLI.

    needlec compile examples/cnn.py -o cnn.so

Like ``examples/mlp.py`` it defines ``model`` and ``example_inputs``.
"""
import numpy as np

from needlec import nn

rng = np.random.default_rng(0)

model = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),   # 8 x 14 x 14
    nn.Conv2d(8, 16, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),  # 16 x 7 x 7
    nn.Flatten(),
    nn.Linear(16 * 7 * 7, 10, rng=rng),
)

example_inputs = (rng.standard_normal((2, 1, 28, 28)).astype(np.float32),)
