"""Pipelines that chain gpucal's steps: :func:`detector1` (raw ramps to count rates)."""

from __future__ import annotations

from .detector1 import detector1, detector1_result
from .steps import default_skips, step_order

__all__ = ["default_skips", "detector1", "detector1_result", "step_order"]
