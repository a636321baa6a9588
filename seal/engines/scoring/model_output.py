"""The reward in a sequence classifier's output, whatever shape the model returns it in."""

from __future__ import annotations

from typing import Any

import numpy as np


def reward_values(output: Any, head_index: int) -> np.ndarray | None:
    """Float64 rewards of a batch: output `head_index` of the classifier logits (`logits`, or `score` for
    some custom RMs, or the first item of a tuple). None when the output holds no logits."""
    logits = getattr(output, "logits", None)
    if logits is None:
        logits = getattr(output, "score", None)
    if logits is None and isinstance(output, tuple | list):
        logits = output[0]
    if logits is None:
        return None
    if logits.dim() == 1:
        logits = logits.unsqueeze(-1)
    return logits[:, head_index].float().cpu().numpy().astype(np.float64)
