"""Cases for the view ops and copy (views are checked through the copy of the output)."""
from __future__ import annotations

from needlec import DType
from tests.opcases import In, OpCase

BIG = 2**62

CASES = [
    OpCase("reshape", (In((2, 3, 4)),), {"shape": [4, 6]}),
    OpCase("reshape", (In((2, 3, 4), DType.I32),), {"shape": [24]}),
    OpCase("reshape", (In(()),), {"shape": [1, 1]}),
    OpCase("reshape", (In((0, 4)),), {"shape": [2, 0]}),
    OpCase("reshape", (In((3, 1, 4)),), {"shape": [4, 3]}),
    OpCase("permute", (In((2, 3, 4)),), {"perm": [2, 0, 1]}),
    OpCase("permute", (In((2, 3, 4), DType.F64, "permuted"),), {"perm": [1, 2, 0]}),
    OpCase("permute", (In((5, 6), DType.U8, "strided"),), {"perm": [1, 0]}),
    OpCase("permute", (In(()),), {"perm": []}),
    OpCase("broadcast_to", (In((3, 1)),), {"shape": [2, 3, 4]}),
    OpCase("broadcast_to", (In(()),), {"shape": [5]}),
    OpCase("broadcast_to", (In((1, 4), DType.BOOL, "strided"),), {"shape": [3, 4]}),
    OpCase("broadcast_to", (In((1,)),), {"shape": [0]}),
    OpCase("slice", (In((6, 7)),), {"starts": [1, -5], "stops": [5, BIG], "steps": [2, 1], "axes": [0, 1]}),
    OpCase("slice", (In((6, 7), DType.I64),), {"starts": [-1], "stops": [-BIG], "steps": [-2], "axes": [1]}),
    OpCase("slice", (In((4, 5), DType.F32, "permuted"),), {"starts": [3], "stops": [0], "steps": [-1], "axes": [0]}),
    OpCase("slice", (In((4, 6), DType.F16, "strided"),), {"starts": [1], "stops": [3], "steps": [1], "axes": [1]}),
    OpCase("slice", (In((4, 5)),), {"starts": [3], "stops": [3], "steps": [1], "axes": [0]}),
    OpCase("copy", (In((3, 4), DType.F32, "permuted"),)),
    OpCase("copy", (In((3, 4), DType.BOOL, "strided"),)),
    OpCase("copy", (In(()),)),
]
