"""A 3-layer MLP classifier for 28x28 images, ready for the CLI.

    needlec compile examples/mlp.py -o mlp.so

The CLI loads any Python model file by two module-level names: ``model`` (a
function or ``needlec.nn.Module``) and ``example_inputs`` (a tuple of NumPy
arrays fixing the input shapes and dtypes).
"""
import numpy as np

from needlec import nn

rng = np.random.default_rng(0)

model = nn.Sequential(
    nn.Linear(784, 256, rng=rng), nn.ReLU(),
    nn.Linear(256, 128, rng=rng), nn.ReLU(),
    nn.Linear(128, 10, rng=rng),
)

example_inputs = (rng.standard_normal((4, 784)).astype(np.float32),)
