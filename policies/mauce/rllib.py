"""MAUCE and MATS through RLlib's new API stack (RLModule, Learner, EnvRunner, ConnectorV2).

The team is **one grouped agent**: :class:`TeamBanditEnv` turns a bandit env of
:mod:`marl_envs` into a single-agent gymnasium env whose action is the joint
action (``MultiDiscrete(action_sizes)``) and whose reward is the team reward;
each step's ``info`` carries the joint action, the per-factor rewards and the
exact regret.

* :class:`BanditTeamModule` (a ``TorchRLModule``) holds the factor statistics
  (counts, means, sums of squared deviations, Beta counts, timestep) as torch
  **buffers**, i.e. as its state. Its forward pass runs the MAUCE (UCVE) or MATS
  (VE) policy on those statistics and returns ``Columns.ACTIONS`` directly (RLlib's
  ``GetActions`` connector passes such actions through).
* :class:`AddFactorRewardsToBatch` (learner connector piece) copies every step's
  joint action, factor rewards and regret from the episodes' infos into the
  train batch.
* :class:`BanditLearner` updates the statistics from that batch in
  ``compute_loss_for_module`` (no gradient: the loss is ``0 *`` a dummy
  parameter, so RLlib's optimizer step is a no-op).
* :class:`BanditAlgorithm` samples with the env runners, updates the learner
  and syncs the module state back to the env runners, so every runner acts on
  the statistics of the last update (a batched bandit: keep
  ``rollout_fragment_length`` small).

Use :func:`build_config` or ``scripts/train_bandits_rllib.py``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule

import marl_envs
from marl_envs.bandits.base import BanditEnv
from policies.mauce.experience import FactoredExperience
from policies.mauce.policies import MATSPolicy, MAUCEPolicy
from policies.single_pass import single_pass_training_step

RLLIB_ALGOS = ("mauce", "mats")
BANDIT_ENVS = ("chain0101", "gem_mining", "wind_farm")
FACTOR_REWARDS = "factor_rewards"
JOINT_ACTION = "joint_action"
REGRET = "regret"


def _make_bandit(env_config: dict) -> BanditEnv:
    name = env_config.get("env", "chain0101")
    if name not in BANDIT_ENVS:
        raise ValueError(f"unknown bandit env {name!r}; allowed: {list(BANDIT_ENVS)}")
    return marl_envs.make(name, **env_config.get("env_kwargs", {}))


class TeamBanditEnv(gym.Env):
    """A bandit env of :mod:`marl_envs` as one grouped agent (joint action in, team reward out).

    ``env_config``: ``env`` (bandit name), ``env_kwargs``, ``episode_len``
    (rounds per episode, default 100), ``seed``.
    """

    def __init__(self, env_config: dict | None = None) -> None:
        cfg = dict(env_config or {})
        self.bandit = _make_bandit(cfg)
        self.episode_len = int(cfg.get("episode_len", 100))
        if self.episode_len < 1:
            raise ValueError(f"episode_len must be >= 1, got {self.episode_len}")
        self._seed = cfg.get("seed")
        sizes = self.bandit.graph.action_sizes
        self.action_space = gym.spaces.MultiDiscrete(list(sizes))
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self._agents = self.bandit.possible_agents
        self._t = 0
        self._started = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if not self._started:
            seed = self._seed if seed is None else seed
            self.bandit.reset(seed=seed)
            self._started = True
        self._t = 0
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        joint = np.asarray(action, dtype=np.int64).reshape(-1)
        if self.bandit.num_steps >= self.bandit.horizon or not self.bandit.agents:
            self.bandit.reset()
        _, rewards, _, _, infos = self.bandit.step(
            dict(zip(self._agents, joint.tolist(), strict=True))
        )
        self._t += 1
        info = infos[self._agents[0]]
        out_info = {
            JOINT_ACTION: info["joint_action"],
            FACTOR_REWARDS: info["factor_rewards"],
            REGRET: info["regret"],
        }
        obs = np.array([self._t / self.episode_len], dtype=np.float32)
        return obs, float(rewards[self._agents[0]]), False, self._t >= self.episode_len, out_info


class BanditTeamModule(TorchRLModule):
    """RLModule whose state is the factor statistics; acts with MAUCE or MATS.

    ``model_config``: ``algo`` (``"mauce"`` or ``"mats"``), ``env`` /
    ``env_kwargs`` (to rebuild the coordination graph), ``seed``.
    """

    def setup(self) -> None:
        cfg = self.model_config or {}
        algo = cfg.get("algo", "mauce")
        if algo not in RLLIB_ALGOS:
            raise ValueError(f"unknown algo {algo!r}; allowed: {list(RLLIB_ALGOS)}")
        bandit = _make_bandit(cfg)
        model = bandit.model
        self.graph = model.graph
        seed = int(cfg.get("seed", 0))
        self.experience = FactoredExperience(
            self.graph, model.reward_ranges, rng=np.random.default_rng([seed, 2])
        )
        if algo == "mauce":
            self.policy = MAUCEPolicy(self.graph, experience=self.experience, seed=seed)
        else:
            posterior = "beta" if model.reward_kind in ("bernoulli", "binomial") else "gaussian"
            self.policy = MATSPolicy(
                self.graph, experience=self.experience, seed=seed, posterior=posterior
            )
        shape = self.experience.counts.shape
        for name in FactoredExperience.FIELDS:
            self.register_buffer(name, torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("timestep", torch.zeros((), dtype=torch.int64))
        # RLlib's optimizer needs a parameter; the loss never moves it
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    # ----------------------------------------------------- statistics <-> buffers
    def pull_statistics(self) -> FactoredExperience:
        """Load the buffers into the numpy experience object (and return it)."""
        state = {k: getattr(self, k).detach().cpu().numpy() for k in FactoredExperience.FIELDS}
        state["timestep"] = self.timestep.detach().cpu().numpy()
        self.experience.set_state(state)
        return self.experience

    def push_statistics(self) -> None:
        """Write the numpy experience object back into the buffers."""
        with torch.no_grad():
            for k in FactoredExperience.FIELDS:
                getattr(self, k).copy_(torch.from_numpy(getattr(self.experience, k)))
            self.timestep.fill_(self.experience.timestep)

    def get_state(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        """The statistics as float64 numpy arrays (RLlib's default would round to float32)."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.state_dict().items()}

    def set_state(self, state: dict[str, Any]) -> None:
        """Load a state exactly (counterpart of :meth:`get_state`)."""
        tensors = {
            k: torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v
            for k, v in state.items()
        }
        self.load_state_dict(tensors, strict=False)

    # ------------------------------------------------------------------ forward
    def _act(self, batch: dict[str, Any]) -> dict[str, Any]:
        n = batch[Columns.OBS].shape[0]
        self.pull_statistics()
        actions = np.stack([self.policy.act() for _ in range(n)]) if n else np.zeros(
            (0, self.graph.n_agents), dtype=np.int64
        )
        return {Columns.ACTIONS: torch.as_tensor(actions, dtype=torch.int64)}

    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._act(batch)

    def _forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._act(batch)

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {}


class AddFactorRewardsToBatch(ConnectorV2):
    """Learner connector piece: joint actions, factor rewards and regrets from the infos."""

    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None, **kwargs):
        for sa_episode in self.single_agent_episode_iterator(
            episodes, agents_that_stepped_only=False
        ):
            infos = sa_episode.get_infos(slice(1, len(sa_episode) + 1))
            for info in infos:
                for key in (JOINT_ACTION, FACTOR_REWARDS, REGRET):
                    self.add_batch_item(
                        batch,
                        key,
                        item_to_add=np.asarray(info[key], dtype=np.float64),
                        single_agent_episode=sa_episode,
                    )
        return batch


class BanditLearner(TorchLearner):
    """Updates the module's factor statistics from the batch (no gradient step)."""

    def build(self) -> None:
        super().build()
        if self._learner_connector is not None:
            self._learner_connector.insert_before("BatchIndividualItems", AddFactorRewardsToBatch())

    def compute_loss_for_module(
        self, *, module_id: str, config: Any, batch: dict[str, Any], fwd_out: dict[str, Any]
    ) -> torch.Tensor:
        module = self.module[module_id].unwrapped()
        joint = np.asarray(batch[JOINT_ACTION].detach().cpu().numpy(), dtype=np.int64)
        rewards = np.asarray(batch[FACTOR_REWARDS].detach().cpu().numpy(), dtype=np.float64)
        regret = batch[REGRET].detach().cpu().numpy()
        if Columns.LOSS_MASK in batch:
            mask = batch[Columns.LOSS_MASK].detach().cpu().numpy().astype(bool)
            joint, rewards, regret = joint[mask], rewards[mask], regret[mask]
        exp = module.pull_statistics()
        for a, r in zip(joint, rewards, strict=True):
            exp.record(a, r)
        module.push_statistics()
        self.metrics.log_dict(
            {
                "regret_per_round": float(regret.mean()) if regret.size else 0.0,
                "bandit_timestep": float(exp.timestep),
                "untried_local_arms": float(exp.n_untried()),
            },
            key=module_id,
            window=1,
        )
        return 0.0 * module.dummy.sum()


class BanditConfig(AlgorithmConfig):
    """Config of :class:`BanditAlgorithm` (``algo`` = ``"mauce"`` or ``"mats"``)."""

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or BanditAlgorithm)
        self.bandit_algo = "mauce"
        self.lr = 0.0
        self.train_batch_size_per_learner = 20
        self.rollout_fragment_length = 20
        self.num_env_runners = 0

    def training(self, *, bandit_algo: str | None = NotProvided, **kwargs: Any) -> BanditConfig:
        super().training(**kwargs)
        if bandit_algo is not NotProvided:
            self.bandit_algo = bandit_algo
        return self

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=BanditTeamModule)

    def get_default_learner_class(self) -> type:
        return BanditLearner

    def validate(self) -> None:
        super().validate()
        if self.bandit_algo not in RLLIB_ALGOS:
            raise ValueError(
                f"unknown bandit_algo {self.bandit_algo!r}; allowed: {list(RLLIB_ALGOS)}"
            )


class BanditAlgorithm(Algorithm):
    """Sample -> update the statistics on the learner -> sync them to the env runners."""

    @classmethod
    def get_default_config(cls) -> BanditConfig:
        return BanditConfig()

    def training_step(self) -> None:
        single_pass_training_step(self)


def build_config(
    algo: str = "mauce",
    env: str = "chain0101",
    env_kwargs: dict | None = None,
    seed: int = 0,
    batch_size: int = 20,
    episode_len: int = 100,
    num_env_runners: int = 0,
) -> BanditConfig:
    """A ready :class:`BanditConfig` for ``algo`` on bandit ``env``."""
    if algo not in RLLIB_ALGOS:
        raise ValueError(f"unknown algo {algo!r}; allowed: {list(RLLIB_ALGOS)}")
    if env not in BANDIT_ENVS:
        raise ValueError(f"unknown bandit env {env!r}; allowed: {list(BANDIT_ENVS)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    env_kwargs = dict(env_kwargs or {})
    model_config = {"algo": algo, "env": env, "env_kwargs": env_kwargs, "seed": seed}
    return (
        BanditConfig()
        .environment(
            # the class itself, not a name in Tune's registry: a registration made
            # before Ray starts lands in the first Ray session only
            TeamBanditEnv,
            env_config={
                "env": env, "env_kwargs": env_kwargs, "episode_len": episode_len, "seed": seed,
            },
        )
        .framework("torch")
        .env_runners(
            num_env_runners=num_env_runners,
            num_envs_per_env_runner=1,
            rollout_fragment_length=batch_size,
        )
        .learners(num_learners=0)
        .training(bandit_algo=algo, train_batch_size_per_learner=batch_size, lr=0.0)
        .rl_module(rl_module_spec=RLModuleSpec(module_class=BanditTeamModule,
                                               model_config=model_config))
        .debugging(seed=seed)
    )
