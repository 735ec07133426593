"""FEN's controllers starting biased toward sub-policy 0 (``--controller-sub0-prob P``).

A freshly initialised controller picks among its M sub-policies nearly uniformly, so
early in training an agent spends (M-1)/M of its periods in the diverse sub-policies,
which are trained on the discriminator's reward, not on the environment's. Where
sub-policy 0 (the one trained on the environment reward) starts competent, e.g.
warm-started on a cluster scheduler's decisions (:mod:`policies.warm_start`), that
wastes the efficient policy: on the resource-allocation cluster at load 0.7,
controllers initialised by RLlib still chose sub-policy 0 about a quarter of the time
after 60 iterations (``results/resource_allocation_fen/report.md``).

:class:`PriorControllerTorchRLModule` is RLlib's default PPO module whose policy head's
output layer starts with weights scaled by :data:`OUTPUT_WEIGHT_SCALE` (so the choice
barely depends on the observation at first) and biases ``log p`` for sub-policy 0 and
``log((1 - p) / (M - 1))`` for the others: every observation starts with a choice
distribution of ~``[p, (1-p)/(M-1), ...]``. Training then moves it as PPO's
gradients say; the prior only sets the start. A resumed run restores its weights.
"""

from __future__ import annotations

import math

import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import (
    DefaultPPOTorchRLModule,
)

#: model_config key of the controllers' initial probability of sub-policy 0
SUB0_PROB_KEY = "initial_sub0_prob"
#: the policy head's output weights are multiplied by this at initialisation
OUTPUT_WEIGHT_SCALE = 0.01


def check_sub0_prob(p: float, n_subpolicies: int) -> float:
    """``p`` as a float when it is a probability strictly between 0 and 1 and there are at
    least two sub-policies; ValueError naming the bad value otherwise."""
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 < p < 1:
        raise ValueError(f"controller_sub0_prob must be a probability in (0, 1), got {p!r}")
    if n_subpolicies < 2:
        raise ValueError(f"controller_sub0_prob needs at least 2 sub-policies, got "
                         f"{n_subpolicies}")
    return float(p)


def prior_logits(p: float, n_subpolicies: int) -> list[float]:
    """Logits whose softmax is ``[p, (1-p)/(M-1), ...]`` (M = ``n_subpolicies``)."""
    p = check_sub0_prob(p, n_subpolicies)
    rest = math.log((1.0 - p) / (n_subpolicies - 1))
    return [math.log(p)] + [rest] * (n_subpolicies - 1)


class PriorControllerTorchRLModule(DefaultPPOTorchRLModule):
    """A FEN controller (RLlib's default PPO module) whose choice among sub-policies starts
    at ``model_config[SUB0_PROB_KEY]`` for sub-policy 0, the rest spread evenly."""

    def setup(self) -> None:
        super().setup()
        logits = prior_logits(self.model_config[SUB0_PROB_KEY], int(self.action_space.n))
        output = [m for m in self.pi.modules() if isinstance(m, torch.nn.Linear)][-1]
        if output.out_features != len(logits):
            raise ValueError(f"the controller's policy head outputs {output.out_features} "
                             f"logits, expected one per sub-policy ({len(logits)})")
        with torch.no_grad():
            output.weight.mul_(OUTPUT_WEIGHT_SCALE)
            output.bias.copy_(torch.tensor(logits, dtype=output.bias.dtype))
