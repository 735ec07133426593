"""The A2C loss in torch (one module at a time; RLlib sums over modules)."""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.connectors.learner import (
    AddOneTsToEpisodesAndTruncate,
    GeneralAdvantageEstimation,
)
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.torch_utils import explained_variance

from policies.same_seed_baseline import use_same_seed_advantages

VF_EXPLAINED_VAR_KEY = "vf_explained_var"
ADVANTAGE_MEAN_KEY = "advantage_mean"


class A2CTorchLearner(TorchLearner):
    """Policy-gradient loss with a learned baseline, entropy bonus, and critic loss."""

    def build(self) -> None:
        super().build()
        if (
            self._learner_connector is not None
            and self.config.add_default_connectors_to_learner_pipeline
        ):
            # one artificial step at each chunk end for the bootstrap value, then GAE
            self._learner_connector.prepend(AddOneTsToEpisodesAndTruncate())
            self._learner_connector.append(
                GeneralAdvantageEstimation(gamma=self.config.gamma, lambda_=self.config.lambda_)
            )
            if self.config.baseline == "same_seed_mean":  # whole episodes, no bootstrap
                use_same_seed_advantages(self)

    @classmethod
    def rl_module_required_apis(cls) -> list[type]:
        return [ValueFunctionAPI]

    def compute_loss_for_module(
        self,
        *,
        module_id: str,
        config: Any,
        batch: dict[str, Any],
        fwd_out: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        module = self.module[module_id].unwrapped()
        if Columns.LOSS_MASK in batch:
            mask = batch[Columns.LOSS_MASK]
            n_valid = torch.clamp(mask.sum(), min=1)

            def mean(x: torch.Tensor) -> torch.Tensor:
                return torch.sum(x[mask]) / n_valid
        else:
            mean = torch.mean

        dist = module.get_train_action_dist_cls().from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
        logp = dist.logp(batch[Columns.ACTIONS])
        entropy = dist.entropy()
        advantages = batch[Postprocessing.ADVANTAGES]
        value_targets = batch[Postprocessing.VALUE_TARGETS]
        values = module.compute_values(batch, embeddings=fwd_out.get(Columns.EMBEDDINGS))

        policy_loss = -mean(logp * advantages)
        vf_loss = mean(torch.pow(values - value_targets, 2.0))
        mean_entropy = mean(entropy)
        total = policy_loss + config.vf_loss_coeff * vf_loss - config.entropy_coeff * mean_entropy

        self.metrics.log_dict(
            {
                POLICY_LOSS_KEY: policy_loss,
                VF_LOSS_KEY: vf_loss,
                ENTROPY_KEY: mean_entropy,
                VF_EXPLAINED_VAR_KEY: explained_variance(value_targets, values),
                ADVANTAGE_MEAN_KEY: mean(advantages),
            },
            key=module_id,
            window=1,
        )
        return total
