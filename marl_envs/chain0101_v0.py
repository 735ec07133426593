"""0101-chain: a multi-agent multi-armed bandit on a chain (Bargiacchi et al., ICML 2018).

| | |
|---|---|
| Agents | ``n_agents`` (default 10): ``agent_0`` .. ``agent_{n-1}`` |
| Actions | ``Discrete(2)`` per agent |
| Observation | ``Box(0, 1, (1,))`` float32: fraction of the horizon elapsed (a bandit has no state) |
| Factors | ``(i, i+1)`` for i = 0..n-2 (``env.factors``, ``env.graph``) |
| Factor reward | Bernoulli; means for ``(a_i, a_i+1)`` = (0,0) 0.75, (0,1) 1.0 / 0.25, (1,0) 0.25 / 1.0, (1,1) 0.9 (i even / i odd) |
| Reward | every agent gets the team reward ``sum_e r_e`` |
| Optimum | joint action 0,1,0,1,...; ``env.optimal_value`` (variable elimination) |
| Episode | ``horizon`` rounds (default 10000), then truncated; one round per step |
| Arguments | ``n_agents`` integer >= 2, ``horizon`` integer >= 1 (checked: ``ValueError`` / ``TypeError`` naming the argument) |

``infos[agent]``: ``factor_rewards`` (per-factor rewards of the round),
``joint_action``, ``team_reward``, ``expected_reward`` (``E F(a)``) and ``regret``
(``E F(a*) - E F(a)``, exact). ``env.expected_reward(a)`` gives ``E F(a)`` of any
joint action. The papers report cumulative regret divided by ``n - 1``
(``env.model.regret_scale``).
"""

from marl_envs.bandits.chain0101 import Chain0101Env, env, parallel_env

__all__ = ["Chain0101Env", "env", "parallel_env"]
