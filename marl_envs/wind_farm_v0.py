"""Wind farm yaw control: turbines steer their wakes (FLORIS wake model, NREL 5 MW).

| | |
|---|---|
| Agents | the 7 controllable turbines of an 11-turbine farm (those whose wake reaches another turbine) |
| Actions | ``Discrete(3)``: yaw offset -20, 0 or +20 degrees |
| Observation | ``Box(0, 1, (1,))`` float32: fraction of the horizon elapsed |
| Factors | one per turbine: itself (if controllable) and the controllable turbines whose wake reaches it (within 13 D downwind, 1.5 D crosswind) |
| Factor reward | the turbine's power from a table computed in one vectorised FLORIS call; each round the wind speed is one of 5 equally likely values around ``wind_speed`` (std ``wind_speed_std``); normalised so the optimum's expected farm power is 1 |
| Reward | every agent gets the team reward ``sum_e r_e`` |
| Episode | ``horizon`` rounds (default 10000), then truncated |
| Arguments | ``wind_speed`` > 0 m/s and such that the farm produces power (a ``ValueError`` below the turbines' cut-in, 3 m/s, or above their cut-out, 25 m/s, at every sampled speed), ``wind_speed_std`` >= 0 with every sampled speed >= 0 (``wind_speed - 1.2816 * wind_speed_std >= 0``), ``turbulence_intensity`` in [0, 1], all finite; ``horizon`` integer >= 1 (checked: ``ValueError`` / ``TypeError`` naming the argument) |

Needs FLORIS: ``pip install fairmarl[wind]``; without it ``parallel_env()`` raises
an ImportError saying so. ``infos[agent]`` holds ``factor_rewards``,
``joint_action``, ``team_reward``, ``expected_reward`` and ``regret``.
"""

from marl_envs.bandits.wind_farm import WindFarmEnv, env, parallel_env

__all__ = ["WindFarmEnv", "env", "parallel_env"]
