"""Wind farm yaw control as a bandit (FLORIS wake model), see :mod:`marl_envs.wind_farm_v0`.

FLORIS is an optional dependency (``pip install fairmarl[wind]``); it is imported
only when a :class:`WindFarmModel` is built. The power of every turbine for
every local joint action of its factor and every wind-speed sample is computed
in **one** vectorised FLORIS call at construction; no FLORIS call (and no
network access) happens afterwards.
"""

from __future__ import annotations

import itertools

import numpy as np

from marl_envs.bandits.base import BanditEnv
from marl_envs.bandits.graph import CoordinationGraph
from marl_envs.bandits.models import BanditModel
from marl_envs.resource_env import constructors
from marl_envs.validation import check_float

#: rotor diameter of the NREL 5 MW reference turbine (metres)
ROTOR_DIAMETER = 126.0
#: turbine positions (x downwind, y crosswind) in rotor diameters; wind blows along +x
LAYOUT_D = np.array(
    [
        (0, 0), (0, 3), (0, 6),
        (6, 1), (6, 4), (6, 7),
        (12, 0), (12, 3), (12, 6),
        (18, 2), (18, 4.4),
    ],
    dtype=np.float64,
)
#: yaw offsets (degrees) a controllable turbine chooses from
YAW_ANGLES = (-20.0, 0.0, 20.0)
#: a turbine's wake is taken to reach turbines up to this far downwind / crosswind (diameters)
WAKE_REACH_D = (13.0, 1.5)
#: equal-probability quantiles of N(0, 1) used to sample the wind speed noise
_NORMAL_QUANTILES = np.array([-1.2816, -0.5244, 0.0, 0.5244, 1.2816])
#: the NREL 5 MW turbine's cut-in and cut-out wind speeds (m/s): no power outside
CUT_IN_SPEED, CUT_OUT_SPEED = 3.0, 25.0


def check_wind(
    wind_speed: float, wind_speed_std: float, turbulence_intensity: float
) -> tuple[float, float, float]:
    """The wind arguments as floats, if valid: ``wind_speed`` > 0 m/s, ``wind_speed_std``
    >= 0 and small enough that every sampled wind speed is >= 0, ``turbulence_intensity``
    in [0, 1]; all finite. (Whether the farm then produces power is checked on the
    FLORIS table: a ``ValueError`` when it has none, e.g. below cut-in.)"""
    ws = check_float("wind_speed", wind_speed, low=0.0, low_open=True, note="m/s")
    std = check_float("wind_speed_std", wind_speed_std, low=0.0,
                      high=ws / -_NORMAL_QUANTILES[0],
                      note=f"with wind_speed={ws:g} the lowest sampled wind speed, "
                           f"wind_speed {_NORMAL_QUANTILES[0]:+g} * wind_speed_std, "
                           "must be >= 0")
    ti = check_float("turbulence_intensity", turbulence_intensity, low=0.0, high=1.0)
    return ws, std, ti


def _require_floris():
    try:
        from floris import FlorisModel
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "wind_farm_v0 needs the FLORIS wake model, which is not installed; "
            "install it with `pip install fairmarl[wind]` (or `pip install floris==4.7`)"
        ) from err
    return FlorisModel


class WindFarmModel(BanditModel):
    """11 NREL 5 MW turbines; 7 controllable ones choose a yaw offset from :data:`YAW_ANGLES`.

    A turbine is controllable (an agent) when its wake reaches another turbine
    (:data:`WAKE_REACH_D`); the others stay at yaw 0. There is one factor per
    turbine: its power, as a function of its own yaw (if controllable) and the
    yaws of the controllable turbines whose wake reaches it, the other turbines
    at yaw 0. Each round the free-stream wind speed is one of five equally likely
    values ``wind_speed + wind_speed_std * z_k`` (normal quantiles), common to
    all turbines; rewards are powers divided by the optimal expected farm power,
    so the optimum earns 1 per round.
    """

    reward_kind = "discrete"

    def __init__(
        self,
        wind_speed: float = 8.0,
        wind_speed_std: float = 0.5,
        turbulence_intensity: float = 0.06,
    ) -> None:
        wind_speed, wind_speed_std, turbulence_intensity = check_wind(
            wind_speed, wind_speed_std, turbulence_intensity)
        floris_model = _require_floris()
        pos = LAYOUT_D
        n = len(pos)
        dx = pos[None, :, 0] - pos[:, None, 0]  # [j, k]: k downwind of j
        dy = np.abs(pos[None, :, 1] - pos[:, None, 1])
        reach = (dx > 0) & (dx <= WAKE_REACH_D[0]) & (dy <= WAKE_REACH_D[1])
        controllable = [j for j in range(n) if reach[j].any()]
        agent_of = {j: i for i, j in enumerate(controllable)}
        scopes = [[j for j in controllable if j == k or reach[j, k]] for k in range(n)]
        self.turbines = n
        self.controllable = tuple(controllable)
        self.graph = CoordinationGraph(
            [len(YAW_ANGLES)] * len(controllable),
            [tuple(agent_of[j] for j in s) for s in scopes],
        )
        # every (factor, local action) as a full yaw vector: one FLORIS call for all
        yaws = []
        for s in scopes:
            for combo in itertools.product(range(len(YAW_ANGLES)), repeat=len(s)):
                y = np.zeros(n)
                y[s] = [YAW_ANGLES[c] for c in combo]
                yaws.append(y)
        yaw = np.array(yaws)
        speeds = wind_speed + wind_speed_std * _NORMAL_QUANTILES
        n_rows, n_ws = len(yaw), len(speeds)
        fm = floris_model("defaults")  # NREL 5 MW turbines, Gaussian wake and deflection models
        fm.set(
            layout_x=pos[:, 0] * ROTOR_DIAMETER,
            layout_y=pos[:, 1] * ROTOR_DIAMETER,
            wind_directions=np.full(n_ws * n_rows, 270.0),
            wind_speeds=np.repeat(speeds, n_rows),
            turbulence_intensities=np.full(n_ws * n_rows, turbulence_intensity),
            yaw_angles=np.tile(yaw, (n_ws, 1)),
        )
        fm.run()
        power = fm.get_turbine_powers().reshape(n_ws, n_rows, n)
        tables, off = [], 0
        for k, s in enumerate(scopes):
            m = len(YAW_ANGLES) ** len(s)
            tables.append(power[:, off : off + m, k])
            off += m
        self.factor_means = [t.mean(axis=0) for t in tables]
        best = self.optimal_value
        if not (np.isfinite(power).all() and best > 0):
            raise ValueError(
                f"wind_speed={wind_speed:g} m/s (std {wind_speed_std:g}) gives the farm "
                f"{'no' if np.isfinite(power).all() else 'undefined'} power at the sampled "
                f"wind speeds {np.round(speeds, 3).tolist()}: the NREL 5 MW turbines produce "
                f"power between their cut-in ({CUT_IN_SPEED:g} m/s) and cut-out "
                f"({CUT_OUT_SPEED:g} m/s) wind speeds; choose a wind_speed in that range"
            )
        scale = 1.0 / best
        self.__dict__.pop("_optimum", None)
        self.power_tables = [t * scale for t in tables]  # [wind-speed sample, local action]
        self.factor_means = [t.mean(axis=0) for t in self.power_tables]
        self.reward_ranges = np.array([t.max() - t.min() for t in self.power_tables])
        self.wind_speeds = speeds
        width = int(self.graph.factor_sizes.max())
        self._table = np.zeros((self.graph.n_factors, n_ws, width))
        for e, t in enumerate(self.power_tables):
            self._table[e, :, : t.shape[1]] = t
        self._rows = np.arange(self.graph.n_factors)

    def sample_local(self, local: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        k = rng.integers(len(self.wind_speeds))
        return self._table[self._rows, k, local]


class WindFarmEnv(BanditEnv):
    """Wind farm yaw-control bandit (FLORIS power table)."""

    metadata = {**BanditEnv.metadata, "name": "wind_farm_v0"}

    def __init__(
        self,
        wind_speed: float = 8.0,
        wind_speed_std: float = 0.5,
        turbulence_intensity: float = 0.06,
        horizon: int = 10000,
        render_mode: str | None = None,
    ) -> None:
        model = _cached_model(*check_wind(wind_speed, wind_speed_std, turbulence_intensity))
        super().__init__(model, horizon, render_mode)


_CACHE: dict[tuple[float, float, float], WindFarmModel] = {}


def _cached_model(ws: float, std: float, ti: float) -> WindFarmModel:
    """One FLORIS computation per process and parameter set (the model is read-only)."""
    key = (ws, std, ti)
    if key not in _CACHE:
        _CACHE[key] = WindFarmModel(ws, std, ti)
    return _CACHE[key]


parallel_env, env = constructors(WindFarmEnv)
