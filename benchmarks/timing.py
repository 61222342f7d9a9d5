"""Timing shared by the benchmark scripts."""
from __future__ import annotations

import math
import time


def best_times(functions, repeats: int, warm_up: bool = True) -> list[float]:
    """Best wall time of each function over ``repeats`` interleaved rounds (the machine is
    shared: interleaving spreads the neighbours' load over all candidates alike)."""
    if warm_up:
        for function in functions:
            function()  # warm-up
    best = [math.inf] * len(functions)
    for _ in range(repeats):
        for i, function in enumerate(functions):
            start = time.perf_counter()
            function()
            best[i] = min(best[i], time.perf_counter() - start)
    return best
