"""Ports of the SEAL paper's own analysis helpers (harvard-lil/SEAL, `analysis/functions.py`), used only as
references that seal's implementations are checked against, on the same inputs.

`compute_angle(a, b)` there normalises both vectors, takes the arccos of their dot product and negates the
angle where the 2-D cross product a_0·b_1 − a_1·b_0 is negative; the notebooks call it with a = the pre-training
(control) RM's (chosen, rejected) rewards and b = the post-training (aligned) RM's. Re-written here in the
same steps, element by element, so that a convention error in seal cannot be copied into its reference.
"""

from __future__ import annotations

import math


def paper_angle(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The angle in degrees from `a` to `b` exactly as the paper's code computes it (NaN where it does)."""
    na, nb = math.hypot(*a), math.hypot(*b)
    ua = (a[0] / na, a[1] / na)
    ub = (b[0] / nb, b[1] / nb)
    cos = ua[0] * ub[0] + ua[1] * ub[1]
    cos = cos / (math.hypot(*ua) * math.hypot(*ub))
    try:
        degrees = math.degrees(math.acos(cos))
    except ValueError:  # |cos| > 1 by rounding: numpy's arccos returns NaN there
        return math.nan
    cross = ua[0] * ub[1] - ua[1] * ub[0]
    return -degrees if cross < 0 else degrees
