"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Measurement", "measure", "print_comparison"]


@dataclass
class Measurement:
    name: str
    items: int
    seconds: float

    @property
    def rate(self) -> float:
        """Items per second."""
        return self.items / self.seconds if self.seconds > 0 else float("inf")


def measure(name: str, fn: Callable[[], int], *, warmup: Callable[[], object] | None = None,
            sync: Callable[[], object] | None = None) -> Measurement:
    """Time ``fn`` (which returns how many items it processed), after an optional warm-up.

    ``sync`` (e.g. ``torch.cuda.synchronize``) is called before reading each clock.
    """
    if warmup is not None:
        warmup()
    if sync:
        sync()
    t0 = time.perf_counter()
    items = fn()
    if sync:
        sync()
    return Measurement(name, int(items), time.perf_counter() - t0)


def print_comparison(title: str, baseline: Measurement, *others: Measurement,
                     unit: str = "samples/s") -> None:
    """Print a table of rates with each row's ratio to ``baseline``."""
    rows = [baseline, *others]
    width = max(len(m.name) for m in rows)
    print(title)
    for m in rows:
        ratio = m.rate / baseline.rate if baseline.rate else float("nan")
        print(f"  {m.name:<{width}}  {m.rate:12.1f} {unit}  ({m.items} in {m.seconds:.2f} s)"
              f"  x{ratio:.1f} vs {baseline.name}")
