"""A2C: config and algorithm (synchronous sampling, one gradient pass per batch).

Each training iteration:

1. the env runners sample ``train_batch_size_per_learner`` steps with the current
   policy (all runners in parallel, synchronously);
2. the learner computes advantages ``A_t`` with GAE(gamma, lambda) on the episode
   chunks, bootstrapping with the critic at chunk ends (``lambda_=1`` gives n-step
   returns up to the chunk end, ``lambda_=0`` one-step TD); or, with
   ``baseline="same_seed_mean"``, DeepRM's time-dependent baseline over whole episodes
   that replay the same seed (:mod:`policies.same_seed_baseline`);
3. one gradient step on the whole batch (no epochs, no minibatches, no ratio
   clipping) on ``L = -mean(logp(a_t) A_t) + vf_loss_coeff * mean((V(s_t) - R_t)^2)
   - entropy_coeff * mean(H(pi(.|s_t)))``;
4. the new weights go to every env runner.

The RLModule is RLlib's default actor-critic MLP (policy head + value head, the
module class PPO also uses); the algorithm around it is A2C's.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from policies.single_pass import single_pass_training_step


class A2CConfig(AlgorithmConfig):
    """Configuration of :class:`A2C` (see :meth:`training` for the A2C settings)."""

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or A2C)
        self.lr = 7e-4
        self.rollout_fragment_length = "auto"
        self.train_batch_size = 1000
        self.train_batch_size_per_learner = 1000
        self.lambda_ = 1.0
        self.vf_loss_coeff = 0.5
        self.entropy_coeff = 0.01
        self.grad_clip = 0.5
        self.grad_clip_by = "global_norm"
        self.baseline = "critic"

    def training(
        self,
        *,
        lambda_: float | None = NotProvided,
        vf_loss_coeff: float | None = NotProvided,
        entropy_coeff: float | None = NotProvided,
        baseline: str | None = NotProvided,
        **kwargs: Any,
    ) -> A2CConfig:
        """A2C settings, plus every common training setting (lr, gamma, grad_clip, ...).

        Args:
            lambda_: GAE lambda (1.0: n-step returns to the chunk end, 0.0: TD(0)).
            vf_loss_coeff: weight of the critic's squared error in the loss.
            entropy_coeff: weight of the entropy bonus.
            baseline: ``critic`` (GAE with the learned value function) or
                ``same_seed_mean`` (:mod:`policies.same_seed_baseline`: whole episodes
                of env copies that share their seed; build_config sets the sampler up).
        """
        super().training(**kwargs)
        if lambda_ is not NotProvided:
            self.lambda_ = lambda_
        if vf_loss_coeff is not NotProvided:
            self.vf_loss_coeff = vf_loss_coeff
        if entropy_coeff is not NotProvided:
            self.entropy_coeff = entropy_coeff
        if baseline is not NotProvided:
            self.baseline = baseline
        return self

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import (
            DefaultPPOTorchRLModule,
        )

        # an actor-critic MLP: pi head + value head (ValueFunctionAPI)
        return RLModuleSpec(module_class=DefaultPPOTorchRLModule)

    def get_default_learner_class(self) -> type:
        if self.framework_str != "torch":
            raise ValueError(f"A2C supports framework='torch' only, got {self.framework_str!r}")
        from policies.a2c.a2c_torch_learner import A2CTorchLearner

        return A2CTorchLearner

    def validate(self) -> None:
        super().validate()
        self.validate_train_batch_size_vs_rollout_fragment_length()
        for name in ("vf_loss_coeff", "entropy_coeff"):
            if getattr(self, name) < 0:
                self._value_error(f"`{name}` must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.lambda_ <= 1.0:
            self._value_error(f"`lambda_` must be in [0, 1], got {self.lambda_}")
        from policies.same_seed_baseline import BASELINES

        if self.baseline not in BASELINES:
            self._value_error(f"`baseline` must be one of {list(BASELINES)}, "
                              f"got {self.baseline!r}")

    @property
    def _model_config_auto_includes(self) -> dict[str, Any]:
        return super()._model_config_auto_includes | {"vf_share_layers": False}


class A2C(Algorithm):
    """Synchronous advantage actor-critic (one gradient step per sampled batch)."""

    @classmethod
    def get_default_config(cls) -> A2CConfig:
        return A2CConfig()

    def training_step(self) -> None:
        single_pass_training_step(self)
