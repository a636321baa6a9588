"""The reward shift angle θ, shared by resistance, the pair-level imprint and robustness.

For a pair, u = (control's reward of chosen, control's reward of rejected) and v = the same for the model
(or, in robustness, the rewards before and after rewriting). θ is the signed angle in degrees from u to v,
**counter-clockwise positive** in the plane with chosen on the x axis and rejected on the y axis — the
convention of the SEAL paper's code (`compute_angle` in harvard-lil/SEAL `analysis/functions.py`: the arccos
of the cosine, negated where the 2-D cross product u_c·v_r − u_r·v_c is negative), which gives the paper's
published values their sign (mean θ +6.48°).

What the sign means depends on where the vectors lie: in the (−, −) quadrant, where most rewards of the
OpenAssistant RMs sit, a counter-clockwise turn moves the vector towards the chosen response; in the (+, +)
quadrant it moves it towards the rejected one. Reports therefore say "counter-clockwise", not "towards
chosen".

seal computes atan2(u_c·v_r − u_r·v_c, u·v) rather than the arccos: equal to the paper's value wherever
that is defined, and also defined where rounding pushes the cosine of (anti)parallel vectors past ±1
(arccos gives NaN there). The result lies in (−180°, 180°]: an exactly opposite v is +180.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ANGLE_DEFINITION = (
    "theta = atan2(u_c*v_r - u_r*v_c, u . v) in degrees, in (-180, 180]: the signed angle from u to v, "
    "counter-clockwise positive in the (chosen, rejected) plane, as the SEAL paper's compute_angle"
)


def shift_angles(u_chosen: Any, u_rejected: Any, v_chosen: Any, v_rejected: Any) -> np.ndarray:
    """Signed angle in degrees from u = (u_chosen, u_rejected) to v = (v_chosen, v_rejected), element-wise:
    atan2(u_c·v_r − u_r·v_c, u · v) in (−180, 180], counter-clockwise positive with chosen on x and
    rejected on y (the SEAL paper's convention). NaN where u or v is the zero vector or not finite."""
    uc, ur = np.asarray(u_chosen, np.float64), np.asarray(u_rejected, np.float64)
    vc, vr = np.asarray(v_chosen, np.float64), np.asarray(v_rejected, np.float64)
    cross = uc * vr - ur * vc
    dot = uc * vc + ur * vr
    with np.errstate(invalid="ignore"):
        theta = np.degrees(np.arctan2(cross, dot))
    theta = np.where(theta == -180.0, 180.0, theta)
    zero = ((uc == 0) & (ur == 0)) | ((vc == 0) & (vr == 0))
    return np.where(zero, np.nan, theta)


def angle_population(
    u_chosen: Any, u_rejected: Any, v_chosen: Any, v_rejected: Any, identical: Any = None
) -> tuple[np.ndarray, dict[str, int]]:
    """θ per pair with the pairs that carry no direction set to NaN, and how many each rule removed.

    Pairs with identical responses (``identical`` True) carry no preference and are left out whatever
    their scores (they would enter at 0° or 180°); so are pairs where u or v is the zero vector or a
    score is missing. Pairs tied under one RM but with different responses are ordinary vectors and stay
    in, as in the paper's code. Returns (theta, {"identical": k, "zero_vectors": k, "missing": k})."""
    theta = shift_angles(u_chosen, u_rejected, v_chosen, v_rejected)
    n = theta.size
    ident = np.zeros(n, bool) if identical is None else np.asarray(identical, dtype=bool).reshape(n)
    uc, ur = np.asarray(u_chosen, np.float64), np.asarray(u_rejected, np.float64)
    vc, vr = np.asarray(v_chosen, np.float64), np.asarray(v_rejected, np.float64)
    finite = np.isfinite(uc) & np.isfinite(ur) & np.isfinite(vc) & np.isfinite(vr)
    zero = finite & (((uc == 0) & (ur == 0)) | ((vc == 0) & (vr == 0)))
    excluded = {
        "identical": int(np.count_nonzero(ident & finite)),
        "zero_vectors": int(np.count_nonzero(zero & ~ident)),
        "missing": int(np.count_nonzero(~finite)),
    }
    return np.where(ident, np.nan, theta), excluded


__all__ = ["ANGLE_DEFINITION", "angle_population", "shift_angles"]
