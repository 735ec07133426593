"""The fair-efficient reward of FEN (Jiang & Lu, NeurIPS 2019).

    rhat_i = min(1, ubar / c) / (eps + | u_i / ubar - 1 |)

``ubar / c`` rewards efficiency (clipped to at most 1, as in the authors' code);
the denominator punishes agent i's deviation from the average, above or below.
At ``ubar == 0`` the efficiency term is 0, so the reward is 0 (no NaN, no inf).
"""

from __future__ import annotations

import numpy as np

#: controller period T of each environment (``c`` is the env's ``max_fair_utility``)
CONTROLLER_PERIOD = {
    "job_scheduling": 25, "matthew_effect": 50, "manufacturing_plant": 500,
    "resource_allocation": 20,
}
EPS = 0.1
#: what the efficiency term ``ubar / c`` averages over: ``episode`` -- the utilities since
#: the episode began (the paper); ``period`` -- the utility earned during the controller
#: period that just ended. With ``episode``, a period in which nobody uses the resource
#: costs the efficiency term only ``T / t`` of its value, while the agent that does use it
#: moves away from the average: near-equal controllers that maximise the immediate rhat
#: learn to leave the resource idle. ``period`` makes an idle period worth 0.
EFFICIENCY_WINDOWS = ("episode", "period")


def relative_utility(utility: np.ndarray, average: np.ndarray | float) -> np.ndarray:
    """``(u_i - ubar) / ubar``, 0 where ``ubar == 0``."""
    u = np.asarray(utility, dtype=np.float64)
    avg = np.asarray(average, dtype=np.float64)
    if avg.shape != u.shape:
        avg = np.broadcast_to(avg, u.shape)
    out = np.zeros_like(u)
    np.divide(u - avg, avg, out=out, where=avg != 0)
    return out


def efficiency(average: np.ndarray | float, c: float) -> np.ndarray:
    """``min(1, ubar / c)`` (and >= 0)."""
    if c <= 0:
        raise ValueError(f"c must be > 0, got {c}")
    return np.clip(np.asarray(average, dtype=np.float64) / c, 0.0, 1.0)


def fair_efficient_reward(
    utility: np.ndarray,
    average: np.ndarray | float,
    c: float,
    eps: float = EPS,
    efficiency_average: np.ndarray | float | None = None,
) -> np.ndarray:
    """The fair-efficient reward of every agent.

    Args:
        utility: each agent's utility ``u_i`` (time-averaged environment reward).
        average: the average utility ``ubar`` -- a scalar (central estimate) or one
            estimate per agent (e.g. from gossip).
        c: the environment's fair-share utility.
        eps: the constant keeping the reward finite when ``u_i == ubar``.
        efficiency_average: the average utility that the efficiency term rewards, when
            it is not ``average`` (the paper's choice): e.g. the average over the last
            controller period only, see :data:`EFFICIENCY_WINDOWS`.
    """
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    eff_avg = average if efficiency_average is None else efficiency_average
    return efficiency(eff_avg, c) / (eps + np.abs(relative_utility(utility, average)))


def controller_features(
    utility: np.ndarray, average: np.ndarray | float, c: float
) -> np.ndarray:
    """The two utility features appended to each agent's observation for its controller.

    ``[(u_i - ubar) / ubar, min(1, ubar / c)]`` per agent, shape ``(n, 2)``, float32.
    """
    if np.ndim(average) == 0 and c > 0:
        # one average for every agent (the central estimate, every env step): the same
        # arithmetic on the scalar, without the broadcasting helpers' overhead
        u = np.asarray(utility, dtype=np.float64)
        avg = float(average)
        out = np.empty((u.shape[0], 2), dtype=np.float32)
        out[:, 0] = (u - avg) / avg if avg != 0 else 0.0
        out[:, 1] = min(max(avg / c, 0.0), 1.0)
        return out
    rel = relative_utility(utility, average)
    out = np.empty((rel.shape[0], 2), dtype=np.float32)
    out[:, 0] = rel
    out[:, 1] = efficiency(average, c)
    return out
