"""Warm start: supervised pretraining of a learner's policy on a heuristic (DeepRM's ``pg_su``).

DeepRM (Mao et al., HotNets 2016) initialises its policy network by supervised learning
on a heuristic scheduler's decisions before training it with policy gradient. This
module does the same for an RLlib algorithm of the new API stack:

1. :func:`collect_demonstrations` runs a teacher from
   :mod:`policies.heuristics.schedulers` (``sjf``, ``tetris``, ...) in the training env
   (built from the algorithm's ``env_config``, so observations -- action masks included
   -- are exactly what the module sees) and records every agent's observation, the
   teacher's action and the discounted return of the rewards the learner trains on
   (``reward_scale`` included; an episode's return ends with the episode, no bootstrap).
2. :func:`pretrain_module` fits a module to them: cross-entropy of its action logits
   against the teacher's action, plus the squared error of its value function against
   the return (so that the first advantages of RL fine-tuning are not those of an
   untrained critic). Adam, minibatches, ``epochs`` passes, seeded shuffling.
3. :func:`warm_start` does 2. on every module of every Learner of an algorithm
   (``LearnerGroup.foreach_learner``, local or remote) and syncs the weights to the env
   runners. The Learners' own optimiser state is left as built.

FEN (its hierarchical variants, :class:`policies.fen.envs.FENHierarchyEnv`): the
demonstrations are collected in FEN's own env, with every controller choosing
sub-policy 0 and the teacher acting for it, so the observations are the sub-policies'
(with FEN's utility features); only sub-policy 0, the one trained on the environment
reward, is fitted. The controllers and the other sub-policies start untrained, as FEN
needs them to differ.

The returned figures (``accuracy``: the fraction of demonstrations where the module's
greedy action is the teacher's; ``cross_entropy``; ``vf_explained_var``) tell how well
the module imitates the teacher before RL starts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.heuristics.schedulers import SCHEDULERS, make_scheduler

#: pretraining settings and their defaults (``warm_start(..., **settings)``)
PRETRAIN_DEFAULTS: dict[str, Any] = {"epochs": 20, "minibatch_size": 512, "lr": 1e-3,
                                     "vf_coeff": 1.0}
#: demonstration episodes by default
DEMO_EPISODES = 50
#: the seed of run seed 0's first demonstration episode (see :func:`demonstration_seed`)
DEMO_SEED = 1_000


def demonstration_seed(run_seed: int) -> int:
    """The seed of the first demonstration episode of a run: ``DEMO_SEED + 1000 *
    run_seed`` (episode ``i`` resets with it ``+ i``; evaluations start at 10000)."""
    return DEMO_SEED + 1000 * int(run_seed)


@dataclass
class Demonstrations:
    """A teacher's decisions: observations (a float32 tensor, or a dict of them for dict
    observations), actions and discounted returns, one row per agent step."""

    observations: Any
    actions: np.ndarray
    returns: np.ndarray
    teacher: str

    def __len__(self) -> int:
        return len(self.actions)


def _rows(observations: Any, index: np.ndarray) -> Any:
    if isinstance(observations, Mapping):
        return {key: _rows(value, index) for key, value in observations.items()}
    return observations[index]


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma * G_{t+1}`` over one trajectory (``G`` after the last step 0)."""
    out = np.zeros(len(rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out[t] = running
    return out.astype(np.float32)


def _is_fen_hierarchy(env_config: Mapping[str, Any]) -> bool:
    """Whether ``env_config`` builds FEN's hierarchy env (its hierarchical variants)."""
    if env_config.get("factory") != "fen":  # policies.fen.variants.FACTORY
        return False
    from policies.fen.variants import HIERARCHICAL_VARIANTS

    variant = env_config.get("variant")
    if variant not in HIERARCHICAL_VARIANTS:
        raise ValueError(f"a warm start supports FEN's hierarchical variants "
                         f"{list(HIERARCHICAL_VARIANTS)}, not {variant!r}")
    return True


def collect_demonstrations(env_config: Mapping[str, Any], teacher: str, *, episodes: int,
                           seed: int, gamma: float) -> Demonstrations:
    """Run scheduler ``teacher`` for ``episodes`` episodes (seeds ``seed``, ``seed + 1``,
    ...) in the env of ``env_config`` (:func:`policies.rllib_env.build_parallel_env`);
    in FEN's hierarchy env every controller chooses sub-policy 0 and the teacher acts
    for it (one trajectory per base agent, the observations sub-policy 0's)."""
    from policies.rllib_env import build_parallel_env
    from policies.training import stack_observations

    if teacher not in SCHEDULERS:
        raise ValueError(f"unknown warm-start teacher {teacher!r}; allowed: {list(SCHEDULERS)}")
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"warm-start episodes must be an integer >= 1, got {episodes!r}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
    fen = _is_fen_hierarchy(env_config)
    env = build_parallel_env(env_config)
    observations: list[Any] = []
    actions: list[int] = []
    returns: list[np.ndarray] = []
    try:
        for i in range(episodes):
            scheduler = make_scheduler(teacher)
            obs, infos = env.reset(seed=seed + i)
            trajectory: dict[str, list[tuple[Any, int, float]]] = {}
            while env.agents:
                # FEN's ids: "<agent>/ctrl/<k>" (controllers), "<agent>/sub/<k>/<z>"
                owner = {a: a.split("/")[0] for a in env.agents}
                if fen and env.agents[0].split("/")[1] == "ctrl":
                    obs, _, _, _, _ = env.step(dict.fromkeys(env.agents, 0))
                    continue
                if fen:  # the wrapper does not pass the base env's infos on
                    infos = env.unwrapped.current_infos()
                planned = scheduler.act(dict.fromkeys(owner.values()), infos)
                chosen = {a: planned[owner[a]] for a in env.agents}
                next_obs, rewards, _, _, infos = env.step(chosen)
                for a in chosen:
                    trajectory.setdefault(owner[a], []).append((obs[a], chosen[a], rewards[a]))
                obs = next_obs
            for steps in trajectory.values():
                observations += [o for o, _, _ in steps]
                actions += [a for _, a, _ in steps]
                returns.append(discounted_returns(np.array([r for _, _, r in steps]), gamma))
    finally:
        env.close()
    return Demonstrations(stack_observations(observations), np.asarray(actions, dtype=np.int64),
                          np.concatenate(returns), teacher)


def pretrain_module(module: Any, demos: Demonstrations, *, epochs: int, minibatch_size: int,
                    lr: float, vf_coeff: float, seed: int) -> dict[str, float]:
    """Fit ``module`` (a torch RLModule with ``compute_values``) to ``demos`` in place;
    the imitation figures after the last epoch."""
    import torch
    from ray.rllib.core.columns import Columns

    for name, value in (("epochs", epochs), ("minibatch_size", minibatch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"warm-start {name} must be an integer >= 1, got {value!r}")
    if not lr > 0 or not vf_coeff >= 0:
        raise ValueError(f"warm-start needs lr > 0 and vf_coeff >= 0, got {lr!r}, {vf_coeff!r}")

    def losses(index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = {Columns.OBS: _rows(demos.observations, index)}
        logits = module.forward_train(b)[Columns.ACTION_DIST_INPUTS]
        actions = torch.as_tensor(demos.actions[index])
        ce = torch.nn.functional.cross_entropy(logits, actions)
        values = module.compute_values(b)
        vf = torch.mean((values - torch.as_tensor(demos.returns[index])) ** 2)
        return ce, vf, (logits.argmax(dim=-1) == actions).float().mean()

    rng = np.random.default_rng(seed)
    module.train()
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    n = len(demos)
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, minibatch_size):
            ce, vf, _ = losses(order[start:start + minibatch_size])
            optimizer.zero_grad()
            (ce + vf_coeff * vf).backward()
            optimizer.step()
    with torch.no_grad():
        ce, vf, accuracy = losses(np.arange(n))
    variance = float(np.var(demos.returns))
    return {"accuracy": float(accuracy), "cross_entropy": float(ce),
            "vf_explained_var": 1.0 - float(vf) / variance if variance > 0 else float("nan"),
            "samples": float(n)}


def warm_start(algo: Any, demos: Demonstrations, *, seed: int,
               modules: Callable[[str], bool] | None = None,
               **settings: Any) -> dict[str, dict[str, float]]:
    """Pretrain every module of ``algo``'s Learners (those ``modules`` accepts, if given)
    on ``demos`` and sync the env runners; ``{module_id: figures}`` (of the first
    Learner). ``settings``: keys of :data:`PRETRAIN_DEFAULTS`."""
    unknown = set(settings) - set(PRETRAIN_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown warm-start setting(s) {sorted(unknown)}; allowed: "
                         f"{sorted(PRETRAIN_DEFAULTS)}")
    kwargs = {**PRETRAIN_DEFAULTS, **settings}

    def fit(learner: Any) -> dict[str, dict[str, float]]:
        return {mid: pretrain_module(learner.module[mid], demos, seed=seed, **kwargs)
                for mid in learner.module.keys() if modules is None or modules(mid)}

    results = algo.learner_group.foreach_learner(fit)
    figures = [r.get() for r in results]
    algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group,
                                       inference_only=True)
    return figures[0]


def warm_start_from(config: Any, teacher: str, *, episodes: int = DEMO_EPISODES,
                    seed: int) -> Callable[[Any], dict[str, dict[str, float]]]:
    """The ``warm_start`` of :func:`policies.training.run_training` for ``config`` (an
    AlgorithmConfig): ``teacher``'s demonstrations in ``config``'s env (discounted with
    its ``gamma``, first episode :func:`demonstration_seed`), bound to :func:`warm_start`
    (for FEN: fitting sub-policy 0's modules only)."""
    demos = collect_demonstrations(config.env_config, teacher, episodes=episodes,
                                   seed=demonstration_seed(seed), gamma=config.gamma)
    modules = None
    if _is_fen_hierarchy(config.env_config):
        from policies.fen.variants import parse_sub_module_id

        def modules(mid: str) -> bool:
            sub = parse_sub_module_id(mid)
            return sub is not None and sub[1] == 0

    return functools.partial(warm_start, demos=demos, seed=seed, modules=modules)
