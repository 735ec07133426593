"""Gem Mining: villages send their workers to mines (Bargiacchi et al., ICML 2018).

| | |
|---|---|
| Agents | villages ``agent_0`` .. ``agent_{V-1}``, ``V ~ U{5..15}`` drawn from ``instance_seed`` (or ``n_villages``) |
| Actions | ``Discrete(k_v)``: village v reaches mines ``v .. v+k_v-1``, ``k_v ~ U{2..4}`` (the last village 4); action = which of them |
| Observation | ``Box(0, 1, (1,))`` float32: fraction of the horizon elapsed |
| Factors | one per mine (``V + 3`` mines) over the villages that reach it |
| Factor reward | ``Binomial(w, p * 1.03**w)`` gems, ``w`` the workers sent (village workers ``U{1..5}``), productivity ``p ~ U(0, 0.5)``; divided by the optimal expected total when ``normalise`` (default) |
| Reward | every agent gets the team reward ``sum_e r_e`` (1 per round at the optimum when normalised) |
| Episode | ``horizon`` rounds (default 40000), then truncated |
| Arguments | ``instance_seed`` integer >= 0, ``n_villages`` None or an integer >= 1, ``normalise`` a bool, ``horizon`` integer >= 1 (checked: ``ValueError`` / ``TypeError`` naming the argument) |

The instance (graph, workers, productivities) is fixed by ``instance_seed``;
``reset(seed=...)`` seeds the reward draws. ``infos[agent]`` holds
``factor_rewards``, ``joint_action``, ``team_reward``, ``expected_reward`` and
``regret`` (exact, from variable elimination).
"""

from marl_envs.bandits.gem_mining import GemMiningEnv, env, parallel_env

__all__ = ["GemMiningEnv", "env", "parallel_env"]
