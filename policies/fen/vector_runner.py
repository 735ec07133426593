"""Fast sampling of FEN's hierarchy: ``build_fen_config(..., sampler="vector")``.

:class:`FENVectorEnvRunner` is a ``MultiAgentEnvRunner`` whose ``sample()`` steps the
runner's N copies of :class:`policies.fen.envs.FENHierarchyEnv` (through the same
:class:`policies.rllib_env.PettingZooMultiAgentEnv` adapter, so the env semantics --
rhat, segments, controller steps, ``episode_stats`` -- stay in one place) with its own
light bookkeeping instead of RLlib's per-step ``MultiAgentEpisode`` machinery, whose cost
grows with the fresh agent ids FEN creates every period. Per loop iteration it does ONE
batched forward pass per module over every acting agent of every copy (controllers at
controller steps, sub-policies in between; a plain MLP ``DefaultPPOTorchRLModule`` as its
actor path's matrix products, :func:`policies.ppo_mlp.actor_path`, without the value
branch that RLlib's exploration forward also computes; modules of one shape, FEN's
sub-policies, in one stacked pass, :class:`policies.ppo_mlp.StackedPaths`), samples
actions and their log-probabilities
from the module's categorical distribution (:func:`sample_categorical`), records
into plain lists, and at the end of ``sample()`` builds the episodes the learner needs in
bulk: one ``MultiAgentEpisode`` chunk per env copy (and per env episode that ended
during the call), whose agents are the segment / decision ids with numpy
``SingleAgentEpisode``\\ s (observations, actions, rewards, ``action_logp``,
``action_dist_inputs``, ``weights_seq_no``, terminated / truncated flags).

It reproduces ``MultiAgentEnvRunner``'s bookkeeping: the loop stops once
``num_timesteps`` env steps (controller steps and base steps, as RLlib counts them) are
sampled; an env copy whose episode ended resets on the next loop iteration (that
iteration does not count); a reward reaches the action the agent took last; an agent's
step belongs to the chunk in which its next observation arrives; a segment still running
at the end of ``sample()`` is cut (this chunk holds its steps so far, not done, so the
learner bootstraps it; the next chunk continues it); agents without a completed step are
dropped from a chunk. ``tests/test_fen_vector_sampler.py`` checks that the learner
receives the same episodes as from ``MultiAgentEnvRunner``.

Differences (none reaches the learner): infos are kept only for the last observation of
each agent episode (where the env attaches ``episode_stats``); of the episode callbacks
only ``on_episode_end`` is made (with the env episode's last chunk and its earlier chunks,
what :class:`policies.callbacks.FairnessCallbacks` needs), so a callback implementing
``on_episode_start`` / ``on_episode_step`` / ``on_episode_created`` is rejected; agent
step and agent return metrics are keyed by the base agent (``agent_0``), not by every
per-period id. Calls that are not plain exploration sampling (``num_episodes``,
``random_actions``, ``explore=False``: evaluation) are handed to ``MultiAgentEnvRunner``.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.callbacks.utils import make_callback
from ray.rllib.core.columns import Columns
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import (
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    NUM_MODULE_STEPS_SAMPLED,
    NUM_MODULE_STEPS_SAMPLED_LIFETIME,
    WEIGHTS_SEQ_NO,
)

from policies.fen.envs import FENHierarchyEnv
from policies.fen.variants import HIERARCHICAL_VARIANTS
from policies.ppo_mlp import Path, StackedPaths, actor_path, path_forward, path_shape

#: values of ``build_fen_config(..., sampler=...)`` / ``train_fen.py --sampler``
#: ``auto``: ``vector`` where :func:`check_vector_sampler` accepts the run, else
#: ``multi_agent`` (:func:`choose_sampler`)
FEN_SAMPLERS = ("auto", "multi_agent", "vector")
_UNSUPPORTED_CALLBACKS = ("on_episode_created", "on_episode_start", "on_episode_step")


def check_vector_sampler(variant: str, probe: Any, fen_options: dict[str, Any]) -> None:
    """Reject what :class:`FENVectorEnvRunner` does not handle, with the reason.

    Args:
        variant: the FEN variant (only the hierarchical ones, ``fen`` and ``fen_gossip``).
        probe: an instance of the variant's env (a :class:`FENHierarchyEnv`).
        fen_options: the FEN options of the run (``model`` must be ``mlp``).
    """
    if variant not in HIERARCHICAL_VARIANTS:
        raise ValueError(
            f"sampler 'vector' samples FEN's hierarchy (variants {list(HIERARCHICAL_VARIANTS)}); "
            f"variant {variant!r} is flat: use sampler 'multi_agent' (or scripts/train.py "
            "--sampler vector for shared flat policies)")
    if not isinstance(probe, FENHierarchyEnv):
        raise ValueError(f"sampler 'vector' needs a FENHierarchyEnv, got {type(probe).__name__}")
    for aid in (probe.possible_agents[0], f"{probe.base.possible_agents[0]}/sub/0/0"):
        space = probe.observation_space(aid)
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(
                "sampler 'vector' needs plain Box observations; this env's are "
                f"{type(space).__name__} (an env with action_mask=True): use sampler "
                "'multi_agent'")
    model = fen_options.get("model", "mlp")
    if model != "mlp":
        raise ValueError(f"sampler 'vector' is tested with model 'mlp' only, got {model!r}: "
                         "use sampler 'multi_agent'")


def choose_sampler(sampler: str, variant: str, probe: Any, fen_options: dict[str, Any]) -> str:
    """The sampler a run uses: ``sampler`` itself (``vector`` checked by
    :func:`check_vector_sampler`), or for ``auto`` the fast ``vector`` sampler wherever it
    applies (the hierarchical variants, Box observations, the mlp model) and RLlib's
    ``multi_agent`` otherwise (the flat variants, action masks, slot scoring)."""
    if sampler != "auto":
        if sampler == "vector":
            check_vector_sampler(variant, probe, fen_options)
        return sampler
    try:
        check_vector_sampler(variant, probe, fen_options)
    except ValueError:
        return "multi_agent"
    return "vector"


def sample_categorical(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Actions (int64) drawn from ``Categorical(logits)`` by inverse CDF, one uniform draw
    from torch's generator per row, and their log-probabilities (the logits' dtype):
    numpy arithmetic, which on a sampler's few rows per step costs half of torch's
    per-call overhead."""
    z = logits - logits.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    # the first action whose cumulative probability exceeds a uniform draw
    cdf = np.exp(log_p).cumsum(-1)
    u = torch.rand(cdf.shape[0], 1, dtype=torch.float32).numpy().astype(cdf.dtype, copy=False)
    acts = np.minimum((cdf <= u * cdf[:, -1:]).sum(-1), cdf.shape[-1] - 1).astype(np.int64)
    return acts, np.take_along_axis(log_p, acts[:, None], -1)[:, 0]


def lookback_buffer(data: np.ndarray | list) -> InfiniteLookbackBuffer:
    """``InfiniteLookbackBuffer(data)`` (no lookback, no space) without its constructor's
    space lookup, which costs more than the rest of building an episode
    (``tests/test_fen_vector_sampler.py`` checks the two are equal)."""
    buf = InfiniteLookbackBuffer.__new__(InfiniteLookbackBuffer)
    buf.data = data
    buf.lookback = 0
    buf.finalized = not isinstance(data, list)
    buf._space = buf._space_struct = None
    return buf


def _record_actions(recs: list[_Record], acts: np.ndarray, logp: np.ndarray,
                    inputs: np.ndarray, seq: int) -> None:
    """Book each record's sampled action (row k of the arrays for ``recs[k]``; actions
    and log-probabilities as Python numbers, their dtypes kept for the episode)."""
    a_dtype, lp_dtype = acts.dtype, logp.dtype
    for rec, a, lp, dist in zip(recs, acts.tolist(), logp.tolist(), inputs, strict=True):
        rec.action_dtype, rec.logp_dtype = a_dtype, lp_dtype
        rec.actions.append(a)
        rec.logp.append(lp)
        rec.dist.append(dist)
        rec.seq.append(seq)
        rec.pending = True


class _Stack:
    """The same-shaped actor paths of several modules (:class:`StackedPaths`), for
    :meth:`FENVectorEnvRunner._act_stacked`."""

    def __init__(self, module_ids: list[str], paths: list[Path]) -> None:
        self.module_ids = module_ids
        self.index = {mid: g for g, mid in enumerate(module_ids)}
        self.paths = StackedPaths(paths)


def _stacks(actor_paths: dict[str, Path | None]) -> dict[str, _Stack]:
    """Module id -> its stack, for the modules whose actor path another module shares
    (FEN's sub-policies); the others act alone."""
    by_shape: dict[tuple, list[str]] = defaultdict(list)
    for mid, path in actor_paths.items():
        if path is not None:
            by_shape[path_shape(path)].append(mid)
    out = {}
    for mids in by_shape.values():
        if len(mids) > 1:
            stack = _Stack(mids, [actor_paths[m] for m in mids])
            out.update(dict.fromkeys(mids, stack))
    return out


def numpy_episode(*, id_: str, observations: InfiniteLookbackBuffer,
                  infos: InfiniteLookbackBuffer, actions: InfiniteLookbackBuffer,
                  rewards: InfiniteLookbackBuffer, extra_model_outputs: dict[str, Any],
                  terminated: bool, truncated: bool, t_started: int, agent_id: str,
                  module_id: str, multi_agent_episode_id: str) -> SingleAgentEpisode:
    """``SingleAgentEpisode(..., len_lookback_buffer=0)`` of :func:`lookback_buffer`\\ s
    (no spaces) without the constructor's checks (``validate`` and the space setters),
    which cost more than the rest of building an episode; the buffers must be
    consistent (one observation and info more than actions, rewards and each extra
    model output). ``tests/test_fen_vector_sampler.py`` checks it equals the
    constructor's."""
    sa = SingleAgentEpisode.__new__(SingleAgentEpisode)
    sa.id_ = id_
    sa.agent_id = agent_id
    sa.module_id = module_id
    sa.multi_agent_episode_id = multi_agent_episode_id
    sa._observation_space = sa._action_space = None
    sa.observations = observations
    sa.infos = infos
    sa.actions = actions
    sa.rewards = rewards
    sa.is_terminated = terminated
    sa.is_truncated = truncated
    sa.extra_model_outputs = extra_model_outputs
    sa.t_started = t_started
    sa.t = len(rewards.data) + t_started
    sa._custom_data = {}
    sa._start_time = sa._last_step_time = None
    sa._last_added_observation = sa._last_added_infos = None
    return sa


class _Record:
    """One agent id's ongoing episode chunk (a segment, a controller decision)."""

    __slots__ = ("aid", "base", "module", "sa_id", "obs", "actions", "logp", "dist", "seq",
                 "rewards", "hanging", "pending", "t_started", "action_dtype", "logp_dtype")

    def __init__(self, aid: str, module: str, first_obs: Any, sa_id: str, t_started: int = 0):
        self.aid = aid
        self.base = aid.split("/", 1)[0]  # the base env's agent
        self.module = module
        self.sa_id = sa_id
        self.obs = [first_obs]
        self.actions: list[Any] = []
        self.logp: list[Any] = []
        self.dist: list[Any] = []
        self.seq: list[int] = []
        self.rewards: list[float] = []
        self.hanging = 0.0  # reward of the pending action so far
        self.pending = False  # acted, next observation not yet received
        self.t_started = t_started
        # of the sampled actions and log-probabilities (kept as Python numbers)
        self.action_dtype: Any = None
        self.logp_dtype: Any = None


class _Copy:
    """Bookkeeping of one env copy: its current env episode and chunk."""

    def __init__(self) -> None:
        self.needs_reset = True
        self.open: dict[str, _Record] = {}
        self.closed: list[SingleAgentEpisode] = []
        self.acting: list[_Record] = []
        self.episode_id = ""
        self.env_t = 0
        self.chunk_start = 0
        self.prev_chunks: list[MultiAgentEpisode] = []
        self.ret = 0.0
        self.agent_returns: dict[str, float] = defaultdict(float)
        self.module_returns: dict[str, float] = defaultdict(float)
        self.agent_steps: dict[str, int] = defaultdict(int)
        self.start_time = 0.0

    def new_episode(self) -> None:
        self.open, self.closed, self.acting, self.prev_chunks = {}, [], [], []
        self.episode_id = uuid.uuid4().hex
        self.env_t = self.chunk_start = 0
        self.ret = 0.0
        self.agent_returns = defaultdict(float)
        self.module_returns = defaultdict(float)
        self.agent_steps = defaultdict(int)
        self.start_time = time.perf_counter()


class FENVectorEnvRunner(MultiAgentEnvRunner):
    """``MultiAgentEnvRunner`` sampling FEN's hierarchy in batches (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in _UNSUPPORTED_CALLBACKS:
            if getattr(self.config, f"callbacks_{name}", None) or any(
                getattr(type(cb), name) is not getattr(RLlibCallback, name)
                for cb in self._callbacks
            ):
                raise ValueError(f"sampler 'vector' makes only on_episode_end callbacks; a "
                                 f"callback implements {name}: use sampler 'multi_agent'")
        if self.config._env_to_module_connector is not None or \
                self.config._module_to_env_connector is not None:
            raise ValueError("sampler 'vector' bypasses env-to-module / module-to-env "
                             "connectors; this config has custom ones: use 'multi_agent'")
        self._copies = [self.env.envs[i].unwrapped for i in range(self.num_envs)]
        for c in self._copies:
            if not isinstance(getattr(c, "par_env", None), FENHierarchyEnv):
                raise ValueError("sampler 'vector' needs PettingZooMultiAgentEnv copies of a "
                                 f"FENHierarchyEnv, got {type(c).__name__}")
        self._states: list[_Copy] | None = None
        self._mapping = self.config.policy_mapping_fn
        self._seeded_fast = False
        self._actor_paths: dict[str, Path | None] = {}
        self._stacks: dict[str, _Stack] = {}

    # ----------------------------------------------------------------- sampling
    @override(MultiAgentEnvRunner)
    def _sample(self, *, num_timesteps: int | None = None, num_episodes: int | None = None,
                explore: bool, random_actions: bool = False,
                force_reset: bool = False) -> list[MultiAgentEpisode]:
        if num_timesteps is None or num_episodes is not None or random_actions or not explore:
            # evaluation-style calls: RLlib's own loop, from freshly reset envs
            self._states = None
            self._needs_initial_reset = True
            return super()._sample(num_timesteps=num_timesteps, num_episodes=num_episodes,
                                   explore=explore, random_actions=random_actions,
                                   force_reset=True)
        if force_reset or self._states is None:
            self._states = [_Copy() for _ in self._copies]
        self._needs_initial_reset = True  # RLlib's own episodes are stale from now on
        return self._fast_sample(num_timesteps)

    def _fast_sample(self, num_timesteps: int) -> list[MultiAgentEpisode]:
        states = self._states
        assert states is not None
        done_chunks: list[MultiAgentEpisode] = []
        module_steps: dict[str, int] = defaultdict(int)
        agent_steps: dict[str, int] = defaultdict(int)
        seq = self._weights_seq_no
        # forward_exploration() = eval() (a walk over every submodule) + _forward_exploration():
        # the modules are put in eval mode once per call, then _forward_exploration is used
        self.module.foreach_module(lambda mid, m: m.eval())
        # plain MLP policies run as their layers' matrix products (no value branch, no
        # nn.Module dispatch), same-shaped ones stacked; other modules through
        # _forward_exploration
        self._actor_paths = {mid: actor_path(m) for mid, m in self.module.items()}
        self._stacks = _stacks(self._actor_paths)
        env_ts = 0
        while env_ts < num_timesteps:
            # one forward pass per module (per stack) over every acting agent of every copy
            groups: dict[str, list[_Record]] = defaultdict(list)
            for st in states:
                if not st.needs_reset:
                    for rec in st.acting:
                        groups[rec.module].append(rec)
            stacked: set[str] = set()
            for mid, recs in groups.items():
                stack = self._stacks.get(mid)
                if stack is None:
                    self._act(mid, recs, seq)
                elif mid not in stacked:
                    members = [m for m in stack.module_ids if m in groups]
                    stacked.update(members)
                    self._act_stacked(stack, [groups[m] for m in members], seq)
            for i, (st, env) in enumerate(zip(states, self._copies, strict=True)):
                if st.needs_reset:
                    self._reset_copy(i, st, env)
                    continue
                acts = {rec.aid: rec.actions[-1] for rec in st.acting}
                obs, rewards, terms, truncs, infos = env.step(acts)
                env_ts += 1
                st.env_t += 1
                if self._record_step(st, obs, rewards, terms, truncs, infos, module_steps,
                                     agent_steps):
                    done_chunks.append(self._finish_episode(i, st))
        self._log_counts(env_ts, module_steps, agent_steps)
        ongoing = []
        for st in states:
            if st.needs_reset or st.env_t == st.chunk_start:
                continue
            ongoing.append(self._cut(st))
        return done_chunks + ongoing

    @torch.no_grad()
    def _act(self, mid: str, recs: list[_Record], seq: int) -> None:
        """Sample the actions of ``recs`` (agents of module ``mid``), booked on them."""
        obs = torch.from_numpy(np.stack([rec.obs[-1] for rec in recs]))
        path = self._actor_paths.get(mid)
        if path is None:
            module = self.module[mid]
            inputs = module._forward_exploration({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
            dist = module.get_exploration_action_dist_cls().from_logits(inputs)
            acts = dist.sample()
            logp = dist.logp(acts)
            _record_actions(recs, acts.numpy(), logp.numpy(), inputs.numpy(), seq)
        else:
            inputs = path_forward(path, obs).numpy()
            _record_actions(recs, *sample_categorical(inputs), inputs, seq)

    @torch.no_grad()
    def _act_stacked(self, stack: _Stack, groups: list[list[_Record]], seq: int) -> None:
        """:meth:`_act` for the agents of several same-shaped modules (``groups``, one
        list per module of ``stack``) in one stacked forward pass: each module's rows
        padded to the longest group's, then its logits of its own rows."""
        recs = [rec for group in groups for rec in group]
        first = recs[0].obs[-1]
        rows = max(map(len, groups))
        x = np.zeros((len(stack.module_ids), rows, *first.shape), first.dtype)
        flat: list[int] = []  # each record's row of the [modules * rows] output
        for group in groups:
            g = stack.index[group[0].module]
            x[g, : len(group)] = [rec.obs[-1] for rec in group]
            flat += range(g * rows, g * rows + len(group))
        out = stack.paths.forward(torch.from_numpy(x)).numpy()
        inputs = out.reshape(-1, out.shape[-1])[flat]
        _record_actions(recs, *sample_categorical(inputs), inputs, seq)

    def _reset_copy(self, i: int, st: _Copy, env: Any) -> None:
        seed = None
        if not self._seeded_fast and self._seed is not None:
            seed = self._seed + i  # as gymnasium's vector reset seeds sub-env i
        obs, _ = env.reset(seed=seed)
        if i == len(self._copies) - 1:
            self._seeded_fast = True
        st.new_episode()
        st.needs_reset = False
        for aid, o in obs.items():
            rec = _Record(aid, self._mapping(aid, None), o, uuid.uuid4().hex)
            st.open[aid] = rec
            st.acting.append(rec)

    def _record_step(self, st: _Copy, obs: dict, rewards: dict, terms: dict, truncs: dict,
                     infos: dict, module_steps: dict, agent_steps: dict) -> bool:
        """Book one env step of a copy; True when its env episode ended."""
        opened = st.open
        for aid, r in rewards.items():
            rec = opened.get(aid)
            if rec is not None and rec.pending:
                rec.hanging += r
        all_term = bool(terms.get("__all__", False))
        all_trunc = bool(truncs.get("__all__", False))
        over = all_term or all_trunc
        acting = []
        for aid, o in obs.items():
            rec = opened.get(aid)
            if rec is None:  # first observation of a new id
                rec = opened[aid] = _Record(aid, self._mapping(aid, None), o, uuid.uuid4().hex)
            else:
                rec.obs.append(o)
                r = rec.hanging
                rec.rewards.append(r)
                rec.hanging = 0.0
                rec.pending = False
                st.ret += r
                st.agent_returns[rec.base] += r
                st.module_returns[rec.module] += r
            module_steps[rec.module] += 1
            agent_steps[rec.base] += 1
            st.agent_steps[rec.base] += 1
            term = terms.get(aid, False) or all_term
            trunc = truncs.get(aid, False) or all_trunc
            if term or trunc:
                del opened[aid]
                if rec.rewards:
                    st.closed.append(self._episode(rec, len(rec.rewards), term, trunc,
                                                   infos.get(aid), st.episode_id))
            else:
                acting.append(rec)
        st.acting = acting
        if over:
            for rec in opened.values():
                if rec.pending:  # acted, no final observation: RLlib repeats the last one
                    raise RuntimeError(
                        f"agent {rec.aid!r} had no observation at the end of the episode; "
                        "sampler 'vector' expects FENHierarchyEnv to close every agent")
            opened.clear()
        return over

    def _episode(self, rec: _Record, n: int, terminated: bool, truncated: bool,
                 last_info: dict | None, ma_id: str) -> SingleAgentEpisode:
        """A numpy SingleAgentEpisode of the first ``n`` steps of ``rec``."""
        return numpy_episode(
            id_=rec.sa_id,
            observations=lookback_buffer(np.stack(rec.obs[: n + 1])),
            infos=lookback_buffer([{} for _ in range(n)] + [dict(last_info or {})]),
            actions=lookback_buffer(np.asarray(rec.actions[:n], dtype=rec.action_dtype)),
            rewards=lookback_buffer(np.asarray(rec.rewards[:n], dtype=np.float64)),
            extra_model_outputs={
                Columns.ACTION_LOGP: lookback_buffer(np.asarray(rec.logp[:n],
                                                                dtype=rec.logp_dtype)),
                Columns.ACTION_DIST_INPUTS: lookback_buffer(np.stack(rec.dist[:n])),
                WEIGHTS_SEQ_NO: lookback_buffer(np.asarray(rec.seq[:n])),
            },
            terminated=terminated,
            truncated=truncated,
            t_started=rec.t_started,
            agent_id=rec.aid,
            module_id=rec.module,
            multi_agent_episode_id=ma_id,
        )

    def _chunk(self, st: _Copy, sa_episodes: list[SingleAgentEpisode], terminated: bool,
               truncated: bool) -> MultiAgentEpisode:
        ma = MultiAgentEpisode(id_=st.episode_id, agent_to_module_mapping_fn=self._mapping)
        ma.env_t_started = st.chunk_start
        ma.env_t = st.env_t
        ma.is_terminated = terminated
        ma.is_truncated = truncated
        for sa in sa_episodes:
            ma.agent_episodes[sa.agent_id] = sa
            ma._agent_to_module_mapping[sa.agent_id] = sa.module_id
        st.chunk_start = st.env_t
        return ma

    def _cut(self, st: _Copy) -> MultiAgentEpisode:
        """The chunk of a running episode; its running agents continue in the next one."""
        episodes = st.closed
        for rec in st.open.values():
            n = len(rec.rewards)
            if n == 0:
                continue
            episodes.append(self._episode(rec, n, False, False, None, st.episode_id))
            rec.obs = rec.obs[n:]
            rec.actions, rec.logp = rec.actions[n:], rec.logp[n:]
            rec.dist, rec.seq = rec.dist[n:], rec.seq[n:]
            rec.rewards = []
            rec.t_started += n
        st.closed = []
        chunk = self._chunk(st, episodes, False, False)
        st.prev_chunks.append(chunk)
        return chunk

    def _finish_episode(self, i: int, st: _Copy) -> MultiAgentEpisode:
        """The last chunk of an env episode that just ended; metrics and callbacks."""
        last = self._chunk(st, st.closed, True, False)
        last.is_terminated = True
        st.closed = []
        st.needs_reset = True
        self.metrics.log_value(NUM_EPISODES, 1, reduce="sum")
        self.metrics.log_value(NUM_EPISODES_LIFETIME, 1, reduce="lifetime_sum")
        self._log_episode_metrics(
            st.env_t, st.ret, time.perf_counter() - st.start_time,
            dict(st.agent_returns), dict(st.module_returns), dict(st.agent_steps),
        )
        make_callback(
            "on_episode_end",
            callbacks_objects=self._callbacks,
            callbacks_functions=self.config.callbacks_on_episode_end,
            kwargs=dict(episode=last, prev_episode_chunks=list(st.prev_chunks), env_runner=self,
                        metrics_logger=self.metrics, env=self.env.unwrapped,
                        rl_module=self.module, env_index=i),
        )
        st.prev_chunks = []
        return last

    def _log_counts(self, env_ts: int, module_steps: dict, agent_steps: dict) -> None:
        if env_ts <= 0:
            return
        self.metrics.log_value(NUM_ENV_STEPS_SAMPLED, env_ts, reduce="sum")
        self.metrics.log_value(NUM_ENV_STEPS_SAMPLED_LIFETIME, env_ts, reduce="lifetime_sum",
                               with_throughput=True)
        self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=env_ts)
        for mid, n in module_steps.items():
            self.metrics.log_value((NUM_MODULE_STEPS_SAMPLED, mid), n, reduce="sum")
            self.metrics.log_value((NUM_MODULE_STEPS_SAMPLED_LIFETIME, mid), n,
                                   reduce="lifetime_sum")
        for aid, n in agent_steps.items():
            self.metrics.log_value((NUM_AGENT_STEPS_SAMPLED, aid), n, reduce="sum")
            self.metrics.log_value((NUM_AGENT_STEPS_SAMPLED_LIFETIME, aid), n,
                                   reduce="lifetime_sum")
