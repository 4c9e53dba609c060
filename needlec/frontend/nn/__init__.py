"""Neural-network modules (``needlec.nn``): PyTorch-style Modules holding NumPy Parameters and Buffers.

One module per family: ``module`` (Module, Parameter, Buffer, init),
``layers`` (Linear, Conv2d, pooling, Flatten, Embedding, Dropout,
Sequential, Residual), ``activations``, ``normalization`` (BatchNorm,
LayerNorm), ``recurrent`` (RNN, LSTM), ``transformer`` (MultiheadAttention,
TransformerEncoderLayer), ``loss`` (loss Modules), ``graph_module`` (any graph as a trainable
Module), and ``functional`` (the
composite ops they are built from). Constructor arguments, parameter names
and initialisation follow PyTorch, so a PyTorch ``state_dict`` converted to
NumPy arrays loads with ``load_state_dict``.
"""
from needlec.frontend.nn import functional
from needlec.frontend.nn.graph_module import GraphModule
from needlec.frontend.nn.activations import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh
from needlec.frontend.nn.layers import (AvgPool2d, Conv2d, Dropout, Embedding, Flatten, Linear, MaxPool2d, Residual,
                                        Sequential)
from needlec.frontend.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from needlec.frontend.nn.module import Buffer, Module, Parameter, State, manual_seed
from needlec.frontend.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from needlec.frontend.nn.recurrent import LSTM, RNN
from needlec.frontend.nn.transformer import MultiheadAttention, TransformerEncoderLayer

__all__ = [
    "State", "Parameter", "Buffer", "Module", "manual_seed",
    "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "Embedding", "Dropout", "Sequential", "Residual",
    "ReLU", "Tanh", "Sigmoid", "GELU", "SiLU", "LeakyReLU", "ELU", "Softmax", "LogSoftmax",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "RNN", "LSTM", "MultiheadAttention", "TransformerEncoderLayer",
    "CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss", "GraphModule", "functional",
]
