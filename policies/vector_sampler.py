"""Fast sampler for parameter sharing: agents of N env copies as one single-agent vector.

``--sampler vector`` (``--policy-mode shared`` only) replaces RLlib's
``MultiAgentEnvRunner`` with :class:`VectorAgentEnvRunner`, a
``SingleAgentEnvRunner`` stepping :class:`PettingZooAgentVectorEnv`: ``copies``
PettingZoo envs presented as a gymnasium vector of ``copies * n_agents`` single-agent
sub-envs, one *slot* per (env copy, agent), slot ``k`` = copy ``k // n_agents``, agent
``possible_agents[k % n_agents]``. One module (RLlib's ``default_policy``) acts for
every slot in one batched forward pass, which is exactly parameter sharing; RLlib's
single-agent episode bookkeeping is much cheaper per agent step than the multi-agent
one (see ``results/rllib_throughput/README.md``).

Requirements (checked): every agent has the same observation and action space, and
every possible agent acts at every step until the episode ends for all of them
together (true for the FEN environments: Job Scheduling, Matthew Effect,
Manufacturing Plant).

Protocol details:

* gymnasium's ``NEXT_STEP`` autoreset (what RLlib expects): the ``step`` after a copy's
  episode ended resets that copy and returns its first observations (reward 0, not
  done); the actions for it are ignored;
* infos are a list with one dict per slot (the form RLlib's runner reads after its
  ``DictInfoToList`` wrapper); they are empty except on a copy's final step, where
  every slot of the copy gets ``{"agent_id": agent}`` and the copy's first slot also
  ``episode_stats`` (``env.unwrapped.episode_stats()``), so
  :class:`policies.callbacks.FairnessCallbacks` logs the fairness figures once per
  env episode and ``agent_return/<agent>`` per agent;
* seeding: the first reset of copy ``i`` in env runner ``w`` uses
  ``derive_seed(run_seed, w, i)`` (as :class:`policies.rllib_env.PettingZooMultiAgentEnv`
  does per sub-env); later resets continue each env's random stream;
* ``env_config["shared_episode_seeds"] = True`` (common random numbers): every copy of a
  runner starts each episode from the same seed (the first from ``derive_seed(run_seed,
  w, 0)``, the next ones drawn from a generator seeded with it; a seed passed to
  ``reset`` is not used), so in an env whose randomness does not depend on the actions
  (``resource_allocation``: the same job arrivals) the copies replay the same episode
  under different sampled actions. The copies must end their episodes at the same step
  (checked); every slot's reset info is ``{"episode_seed": seed, "agent_id": agent}``,
  what :mod:`policies.same_seed_baseline` groups the episodes by.

RLlib's counters then count slots: ``num_env_steps_sampled`` (and
``throughput/env_steps_*``) are agent steps, ``train_batch_size_per_learner`` is in
agent steps, ``episode_return_mean`` is the mean return of one agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space, create_empty_array
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.callbacks.utils import make_callback
from ray.rllib.connectors.module_to_env.unbatch_to_individual_items import (
    UnBatchToIndividualItems,
)
from ray.rllib.env.env_context import EnvContext
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.annotations import override
from ray.rllib.utils.spaces.space_utils import unbatch

from policies.rllib_env import (
    EPISODE_STATS_KEY,
    _limit_torch_threads,
    build_parallel_env,
    derive_seed,
)

#: info key naming the agent of a slot (set on the final step of an episode)
AGENT_ID_KEY = "agent_id"
#: reset-info key of the episode's seed (``shared_episode_seeds`` only)
EPISODE_SEED_KEY = "episode_seed"
#: env_config key: every copy of a runner starts each episode from the same seed
SHARED_EPISODE_SEEDS = "shared_episode_seeds"

#: values of ``build_config(..., sampler=...)`` / ``scripts/train.py --sampler``
SAMPLERS = ("multi_agent", "vector")


class PettingZooAgentVectorEnv(gym.vector.VectorEnv):
    """``copies`` PettingZoo parallel envs as a vector of ``copies * n_agents`` slots.

    ``num_envs`` (the number of slots) must be a multiple of the env's agent count.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, env_config: Mapping[str, Any], num_envs: int, worker_index: int = 0):
        self.env_config = dict(env_config)
        _limit_torch_threads(self.env_config.get("torch_threads"))
        first = build_parallel_env(self.env_config)
        self.possible_agents = list(first.possible_agents)
        n = len(self.possible_agents)
        if n == 0:
            raise ValueError(f"{type(first).__name__} has no possible_agents")
        if not isinstance(num_envs, int) or num_envs < n or num_envs % n:
            raise ValueError(
                f"num_envs ({num_envs!r}) must be a positive multiple of the number of "
                f"agents ({n}): one slot per (env copy, agent)"
            )
        obs_space = first.observation_space(self.possible_agents[0])
        act_space = first.action_space(self.possible_agents[0])
        for a in self.possible_agents[1:]:
            if first.observation_space(a) != obs_space or first.action_space(a) != act_space:
                raise ValueError(
                    "the vector sampler needs identical observation and action spaces for "
                    f"all agents; {a!r} differs from {self.possible_agents[0]!r}"
                )
        self.n_agents = n
        self.copies = num_envs // n
        self.envs = [first] + [build_parallel_env(self.env_config) for _ in range(self.copies - 1)]
        self.num_envs = num_envs
        self.single_observation_space = obs_space
        self.single_action_space = act_space
        self.observation_space = batch_space(obs_space, num_envs)
        self.action_space = batch_space(act_space, num_envs)
        self.render_mode = None
        self.worker_index = int(worker_index or 0)
        run_seed = self.env_config.get("seed")
        self.derived_seeds: list[int] | None = (
            [derive_seed(run_seed, self.worker_index, i) for i in range(self.copies)]
            if run_seed is not None
            else None
        )
        self._seeded = False
        self._needs_reset = np.zeros(self.copies, dtype=bool)
        self.shared_seeds = bool(self.env_config.get(SHARED_EPISODE_SEEDS, False))
        first_seed = (derive_seed(run_seed, self.worker_index, 0) if run_seed is not None
                      else int(np.random.SeedSequence().generate_state(1)[0] >> 1))
        self._episode_seed = first_seed
        self._seed_stream = np.random.default_rng(first_seed)
        # an array, or a dict of arrays for Dict spaces (e.g. action-mask observations)
        self._obs = create_empty_array(obs_space, num_envs, fn=np.zeros)

    # ------------------------------------------------------------------ helpers
    def _put_obs(self, i: int, obs: Mapping[str, Any]) -> None:
        if len(obs) != self.n_agents:
            raise ValueError(
                f"env copy {i} returned observations for {sorted(obs)}; the vector sampler "
                f"needs all of {self.possible_agents} at every step (use --sampler "
                "multi_agent for envs whose agents act at different times)"
            )
        base = i * self.n_agents
        for j, a in enumerate(self.possible_agents):
            _write_row(self._obs, base + j, obs[a])

    def _reset_copy(self, i: int, seed: int | None, options: dict | None) -> None:
        obs, _ = self.envs[i].reset(seed=seed, options=options)
        self._put_obs(i, obs)
        self._needs_reset[i] = False

    def _episode_stats(self, i: int) -> dict[str, float] | None:
        env = self.envs[i]
        fn = getattr(env, "episode_stats", None)
        if not callable(fn):
            fn = getattr(getattr(env, "unwrapped", env), "episode_stats", None)
        return dict(fn()) if callable(fn) else None

    # --------------------------------------------------------------- protocol
    def _reset_shared(self, infos: list[dict[str, Any]], seed: int | None = None) -> None:
        """Reset every copy from one seed (``seed``, else the next of the stream)."""
        self._episode_seed = (int(self._seed_stream.integers(2**31)) if seed is None
                              else int(seed))
        for i in range(self.copies):
            self._reset_copy(i, self._episode_seed, None)
            for j, a in enumerate(self.possible_agents):
                infos[i * self.n_agents + j].update(
                    {EPISODE_SEED_KEY: self._episode_seed, AGENT_ID_KEY: a})

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if self.shared_seeds:
            infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
            first = None if self._seeded else self._episode_seed  # RLlib's seed: unused
            self._seeded = True
            self._reset_shared(infos, first)
            return _copy_batch(self._obs), infos
        if self.derived_seeds is not None and (seed is not None or not self._seeded):
            seeds: list[int | None] = list(self.derived_seeds)
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.copies)]
        elif seed is None:
            seeds = [None] * self.copies
        else:  # a list: gymnasium's convention is one per sub-env; use the copies' first slots
            seeds = [seed[i * self.n_agents] for i in range(self.copies)]
        if any(s is not None for s in seeds):
            self._seeded = True
        for i in range(self.copies):
            self._reset_copy(i, seeds[i], options)
        return _copy_batch(self._obs), [{} for _ in range(self.num_envs)]

    def step(self, actions: Any):
        actions = np.asarray(actions).reshape(self.copies, self.n_agents, *np.shape(actions)[1:])
        n = self.n_agents
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        terms = np.zeros(self.num_envs, dtype=bool)
        truncs = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        agents = self.possible_agents
        if self.shared_seeds and self._needs_reset.any():  # all copies ended together
            self._reset_shared(infos)
            return _copy_batch(self._obs), rewards, terms, truncs, infos
        for i, env in enumerate(self.envs):
            if self._needs_reset[i]:  # NEXT_STEP autoreset: actions ignored
                self._reset_copy(i, None, None)
                continue
            act = actions[i]
            obs, rew, term, trunc, _ = env.step(
                {a: (act[j].item() if act[j].ndim == 0 else act[j]) for j, a in enumerate(agents)}
            )
            base = i * n
            over = not env.agents
            if not over and len(env.agents) != n:
                raise ValueError(
                    f"agents {sorted(set(agents) - set(env.agents))} of env copy {i} finished "
                    "before the others; the vector sampler needs episodes that end for all "
                    "agents together (use --sampler multi_agent)"
                )
            for j, a in enumerate(agents):
                rewards[base + j] = rew.get(a, 0.0)
            if over:
                # an agent that is neither terminated nor truncated when the env has no
                # agents left is treated as truncated (bootstrapped)
                for j, a in enumerate(agents):
                    terms[base + j] = bool(term.get(a, False))
                    truncs[base + j] = not terms[base + j]
                    infos[base + j][AGENT_ID_KEY] = a
                stats = self._episode_stats(i)
                if stats is not None:
                    infos[base][EPISODE_STATS_KEY] = stats
                self._needs_reset[i] = True
                # the final observation is this step's (repeat the last one if the env
                # returns none for finished agents)
                if len(obs) == n:
                    self._put_obs(i, obs)
            else:
                self._put_obs(i, obs)
        if self.shared_seeds and self._needs_reset.any() and not self._needs_reset.all():
            raise ValueError(
                f"env copies {np.flatnonzero(~self._needs_reset).tolist()} went on after "
                f"copies {np.flatnonzero(self._needs_reset).tolist()} ended their episode; "
                "shared_episode_seeds needs episodes that end at the same step in every copy "
                "(an env with a fixed episode length, whose randomness does not depend on "
                "the actions)")
        return _copy_batch(self._obs), rewards, terms, truncs, infos

    def render(self) -> Any:
        return self.envs[0].render()

    def close_extras(self, **kwargs: Any) -> None:
        for env in getattr(self, "envs", []):  # [] when __init__ failed
            env.close()


def _write_row(batch: Any, row: int, value: Any) -> None:
    """``batch[row] = value`` for an array or a (nested) dict of arrays."""
    if isinstance(batch, dict):
        for key, sub in batch.items():
            _write_row(sub, row, value[key])
    else:
        batch[row] = value


def _copy_batch(batch: Any) -> Any:
    if isinstance(batch, dict):
        return {key: _copy_batch(sub) for key, sub in batch.items()}
    return batch.copy()


def _unbatch(column: Any) -> list:
    """``unbatch`` with a fast path for a plain array (same items: ``list(a) == [a[0], ...]``)."""
    return list(column) if isinstance(column, np.ndarray) else unbatch(column)


class FastUnBatchToIndividualItems(UnBatchToIndividualItems):
    """RLlib's ``UnBatchToIndividualItems`` for the single-agent case, with plain array
    columns split by ``list(array)`` instead of one ``tree.unflatten_as`` per item
    (identical output; other cases are handed to RLlib's implementation)."""

    @override(UnBatchToIndividualItems)
    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None, **kw):
        structure = (shared_data or {}).get("memorized_map_structure")
        if not isinstance(structure, list):
            return super().__call__(
                rl_module=rl_module, batch=batch, episodes=episodes, explore=explore,
                shared_data=shared_data, **kw,
            )
        for column, data in batch.copy().items():
            items = _unbatch(data)
            by_episode: dict[tuple, list] = {}
            for i, eps_id in enumerate(structure):
                by_episode.setdefault((eps_id,), []).append(items[i])
            batch[column] = by_episode
        return batch


class VectorAgentEnvRunner(SingleAgentEnvRunner):
    """``SingleAgentEnvRunner`` over :class:`PettingZooAgentVectorEnv` (seeded per runner).

    ``config.num_envs_per_env_runner`` is the number of slots (env copies x agents);
    ``config.env_config`` describes the PettingZoo env as for
    :class:`policies.rllib_env.PettingZooMultiAgentEnv`.

    Two per-slot costs of the parent class are cut (results unchanged): the
    module-to-env ``UnBatchToIndividualItems`` piece is replaced by
    :class:`FastUnBatchToIndividualItems`, and ``on_episode_step`` callbacks are not
    dispatched when no callback implements them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pipeline = getattr(self, "_module_to_env", None)
        for i, piece in enumerate(getattr(pipeline, "connectors", [])):
            if type(piece) is UnBatchToIndividualItems:
                pipeline.connectors[i] = FastUnBatchToIndividualItems(
                    piece.input_observation_space, piece.input_action_space
                )
        self._episode_step_callbacks = bool(self.config.callbacks_on_episode_step) or any(
            type(cb).on_episode_step is not RLlibCallback.on_episode_step
            for cb in self._callbacks
        )

    @override(SingleAgentEnvRunner)
    def _make_on_episode_callback(self, which: str, idx: int, episodes: list) -> None:
        if which == "on_episode_step" and not self._episode_step_callbacks:
            return
        super()._make_on_episode_callback(which, idx, episodes)

    @override(SingleAgentEnvRunner)
    def make_env(self) -> None:
        if self.env is not None:
            try:
                self.env.close()
            except Exception:  # noqa: BLE001  (RLlib does the same: close is best-effort)
                pass
        env_ctx = self.config.env_config
        if not isinstance(env_ctx, EnvContext):
            env_ctx = EnvContext(
                env_ctx, worker_index=self.worker_index, num_workers=self.num_workers
            )
        self.env = PettingZooAgentVectorEnv(
            dict(env_ctx), self.config.num_envs_per_env_runner, worker_index=self.worker_index
        )
        self.num_envs = self.env.num_envs
        self._needs_initial_reset = True
        make_callback(
            "on_environment_created",
            callbacks_objects=self._callbacks,
            callbacks_functions=self.config.callbacks_on_environment_created,
            kwargs=dict(
                env_runner=self, metrics_logger=self.metrics, env=self.env.unwrapped,
                env_context=env_ctx,
            ),
        )
