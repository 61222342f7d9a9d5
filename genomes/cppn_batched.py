"""CPPNs drawn a whole population at a time, level by level: the strategy for GPUs.

``CppnGenome.render`` on the CPU runs each genome's op list over the pixel grid, one genome
after another (fastest on 2 CPU cores: ``benchmarks/cppn_render.py``). On a GPU that would
be thousands of tiny kernel launches per generation, so with ``runtime.render_device`` on a GPU
the compiled programs (:func:`evofool.genomes.cppn_graph.compile_graph`, the same op lists)
are regrouped: every op of every genome becomes one value row of a table, rows are grouped
by depth (inputs 0, an op one more than its deepest source), and each depth is evaluated for
all genomes at once: a gather of the source rows, a weighted sum (sources padded with a
zero row), the constant, and each activation on the rows that use it.

Same semantics, other rounding: the sums run in the same order, but as ``addcmul`` and on
another device's sin/tanh/exp, so a few pixels in a thousand may differ by one 8-bit step
from the CPU renderer's (measured on the CPU by ``tests/test_cppn.py``).
"""
from __future__ import annotations

from typing import Sequence

import torch

from evofool.genomes.cppn_graph import GAUSSIAN, HALF_TANH, LINEAR, SINE, Program

_ZERO = 3  # value rows 0-2 are the x, y, d planes, row 3 is zeros (the padding source)


def _activate_(values: torch.Tensor, code: int) -> torch.Tensor:
    if code == SINE:
        return values.sin_()
    if code == HALF_TANH:
        return values.tanh_()  # the bipolar sigmoid's inputs were halved at compile time
    if code == GAUSSIAN:
        return values.square_().neg_().exp_()
    return values.clamp_(-3.0, 3.0).div_(3.0)


class Plan:
    """The programs of a chunk of genomes, regrouped by depth, as index tensors on ``device``.

    ``levels``: per depth, (value rows written, source rows (M, K), weights (M, K),
    constants (M,), [(code, positions within the level)]); ``outputs``: per genome and
    channel, the value row that holds the output or -1 where it is the constant in
    ``constants``."""

    def __init__(self, programs: Sequence[Program], device: torch.device) -> None:
        rows = _ZERO + 1
        by_depth: dict[int, list] = {}
        self.outputs: list[list[int]] = []
        self.constants: list[list[float]] = []
        for program in programs:
            # registers -> value rows (a register is reused over time; a row never is)
            row_of = {0: 0, 1: 1, 2: 2}
            depth = {0: 0, 1: 0, 2: 0}
            for register, sources, weights, constant, code in program.ops:
                source_rows = [row_of[s] for s in sources]
                level = 1 + max(depth[r] for r in source_rows)
                by_depth.setdefault(level, []).append((rows, source_rows, weights, constant, code))
                row_of[register] = rows
                depth[rows] = level
                rows += 1
            channels = range(program.channels)
            self.outputs.append([-1 if program.constants[c] is not None else row_of[3 + c]
                                 for c in channels])
            self.constants.append([program.constants[c] or 0.0 for c in channels])
        self.rows = rows
        self.levels = []
        for level in sorted(by_depth):
            ops = by_depth[level]
            width = max(len(op[1]) for op in ops)
            sources = [op[1] + [_ZERO] * (width - len(op[1])) for op in ops]
            weights = [list(op[2]) + [0.0] * (width - len(op[2])) for op in ops]
            codes = [op[4] for op in ops]
            groups = [(code, torch.tensor([i for i, c in enumerate(codes) if c == code],
                                          device=device))
                      for code in (SINE, HALF_TANH, GAUSSIAN, LINEAR) if code in codes]
            self.levels.append((
                torch.tensor([op[0] for op in ops], device=device),
                torch.tensor(sources, device=device),
                torch.tensor(weights, dtype=torch.float32, device=device),
                torch.tensor([op[3] for op in ops], dtype=torch.float32, device=device),
                groups))


def evaluate_batched(programs: Sequence[Program], inputs: torch.Tensor,
                     out: torch.Tensor) -> None:
    """Raw outputs (before |o|) of ``programs`` into ``out`` (len(programs), channels,
    pixels), on ``out``'s device; ``inputs``: the (3, pixels) x, y, d planes there."""
    plan = Plan(programs, out.device)
    values = torch.empty((plan.rows, inputs.shape[1]), device=out.device)
    values[:3] = inputs
    values[_ZERO] = 0.0
    for rows, sources, weights, constants, groups in plan.levels:
        total = values[sources[:, 0]].mul_(weights[:, :1])
        for k in range(1, sources.shape[1]):
            total.addcmul_(values[sources[:, k]], weights[:, k:k + 1])
        total.add_(constants[:, None])
        for code, where in groups:
            total[where] = _activate_(total[where], code)
        values[rows] = total
    for i, (rows, constants) in enumerate(zip(plan.outputs, plan.constants)):
        for channel, (row, constant) in enumerate(zip(rows, constants)):
            if row >= 0:
                out[i, channel] = values[row]
            else:
                out[i, channel] = constant
