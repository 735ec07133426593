"""PPO's minibatch step with same-shaped modules computed as one stack.

RLlib's ``PPOTorchLearner`` runs every minibatch step module by module: each module's
forward, loss, gradient clipping and Adam step are separate small torch calls. With
several same-shaped modules (FEN's sub-policies; independent PPO's per-agent networks)
most of that time is per-call overhead. :class:`StackedPPO` computes the same step with
the modules of one *group* stacked on a leading axis: each Linear layer of the group is
one :class:`policies.onednn_linear.StackedLinear` (oneDNN's float32 products, about twice
MKL's speed on AVX-512 AMD processors), PPO's loss terms are computed for every
module of the group at once, gradient clipping is per module as RLlib's global-norm
clipping, and one Adam steps the stacked parameters (Adam is elementwise: the same
update as one per module).

What a step computes per module is ``PPOTorchLearner.compute_loss_for_module`` (clipped
surrogate, clipped value loss, the module's own entropy and KL coefficients, the loss
mask), ``TorchLearner.compute_gradients`` / ``postprocess_gradients`` (global-norm
clipping with RLlib's treatment of non-finite norms) and ``apply_gradients`` (non-finite
gradients set to zero, then the module's Adam step): ``tests/test_fen_learner.py`` checks
the parameters after an update against ``PPOTorchLearner``'s.

A group is the modules that share network shapes, activations, PPO settings that enter
the loss, optimizer settings and Adam step count. :meth:`StackedPPO.gather` copies the
modules' parameters and Adam state into the stacks at the start of an update;
:meth:`StackedPPO.scatter` copies them back at its end, so checkpoints, weight syncs and
RLlib's own code only ever see the modules and their per-module optimizers.
:func:`stackable` says which learners this applies to (plain MLP ``DefaultPPOTorchRLModule``
with a categorical action distribution and separate actor and critic encoders, Adam, no
learning-rate schedules or gradient scalers, one local learner on the CPU, a PyTorch
with oneDNN); anything else stays on RLlib's module-by-module path.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from ray.rllib.algorithms.ppo.ppo import (
    LEARNER_RESULTS_KL_KEY,
    LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY,
    LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY,
)
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.torch_utils import explained_variance

from policies import onednn_linear
from policies.onednn_linear import StackedLinear
from policies.ppo_mlp import Path, actor_path, critic_path

logger = logging.getLogger(__name__)

#: RLlib's bound on a non-finite gradient norm (``compute_global_norm``: 10e8)
_NORM_BOUND = 10e8
#: PPO settings that enter a module's loss and gradient step
_LOSS_SETTINGS = ("clip_param", "vf_clip_param", "vf_loss_coeff", "use_kl_loss", "grad_clip",
                  "grad_clip_by")


def module_paths(module: Any) -> tuple[Path, Path] | None:
    """A module's actor and critic paths (:mod:`policies.ppo_mlp`); None where it has not
    both, or has a layer :class:`StackedLinear` does not compute (an activation it does
    not fuse, parameters other than float32)."""
    actor, critic = actor_path(module), critic_path(module)
    if actor is None or critic is None or not all(
            onednn_linear.supports(act) and layer.weight.dtype == torch.float32
            for layer, act in actor + critic):
        return None
    return actor, critic


def stackable(learner: Any) -> bool:
    """Whether :class:`StackedPPO` can run ``learner``'s steps: one local learner on the
    CPU (no DDP) with oneDNN (:func:`policies.onednn_linear.available`), every module a
    :func:`module_paths` module trained by one plain ``torch.optim.Adam`` (one parameter
    group, no learning-rate schedule, no gradient scaler), a value function
    (``use_critic``) and non-finite gradients set to zero (``torch_skip_nan_gradients``
    off)."""
    config = learner.config
    if not onednn_linear.available() or learner._device.type != "cpu":
        return False
    if config.num_learners > 1 or learner._grad_scalers is not None or \
            learner._lr_scheduler_classes is not None or config.torch_skip_nan_gradients:
        return False
    for mid, module in learner.module.items():
        optimizers = learner.get_optimizers_for_module(mid)
        if module_paths(module.unwrapped()) is None or len(optimizers) != 1:
            return False
        optimizer = optimizers[0][1]
        if type(optimizer) is not torch.optim.Adam or len(optimizer.param_groups) != 1:
            return False
        config = learner.config.get_config_for_module(mid)
        if config.grad_clip_by not in ("global_norm", None) or not config.use_critic:
            return False
    return True


class _Group:
    """Same-shaped modules trained as one stack (see the module doc)."""

    def __init__(self, learner: Any, ids: list[str]) -> None:
        self.ids = ids
        modules = [learner.module[m].unwrapped() for m in ids]
        paths = [module_paths(m) for m in modules]
        self.n_actor = len(paths[0][0])
        self.acts = [act for _, act in paths[0][0] + paths[0][1]]
        # per module: its parameters in stack order (each layer's weight, then bias)
        self.params = [[t for layer, _ in actor + critic for t in (layer.weight, layer.bias)]
                       for actor, critic in paths]
        self.leaves = [torch.stack([p[k].detach() for p in self.params]).requires_grad_(True)
                       for k in range(len(self.params[0]))]
        self.optimizers = [learner.get_optimizers_for_module(m)[0][1] for m in ids]
        settings = {k: v for k, v in self.optimizers[0].param_groups[0].items() if k != "params"}
        self.adam = torch.optim.Adam(self.leaves, **settings)
        if self.optimizers[0].state.get(self.params[0][0]):  # the group's step count is one
            for k, leaf in enumerate(self.leaves):
                states = [self.optimizers[g].state[p[k]] for g, p in enumerate(self.params)]
                self.adam.state[leaf] = {
                    "step": states[0]["step"].clone(),
                    **{name: torch.stack([s[name] for s in states])
                       for name in states[0] if name != "step"},
                }
        self.config = learner.config.get_config_for_module(ids[0])  # the group's (_group_key)
        self.grad_clip = self.config.grad_clip

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[G, B, actions]`` and values ``[G, B]`` of stacked observations (each
        layer of the group's modules one :class:`StackedLinear`)."""
        layers = list(zip(self.leaves[0::2], self.leaves[1::2], self.acts, strict=True))
        outs = []
        for path in (layers[: self.n_actor], layers[self.n_actor:]):
            xs = obs.unbind(0)
            for weight, bias, act in path:
                xs = StackedLinear.layer(weight, bias, act, xs)
            outs.append(torch.stack(xs))
        return outs[0], outs[1].squeeze(-1)

    def scatter(self) -> None:
        """Copy the stacks' parameters and Adam state back into the modules and their
        optimizers."""
        with torch.no_grad():
            for k, leaf in enumerate(self.leaves):
                state = self.adam.state.get(leaf)
                for g, params in enumerate(self.params):
                    params[k].copy_(leaf[g])
                    if state:
                        self.optimizers[g].state[params[k]] = {
                            name: (value.clone() if name == "step" else value[g].clone())
                            for name, value in state.items()}


def _group_key(learner: Any, mid: str) -> tuple:
    """What modules must share to be stacked: network shapes and activations, the PPO
    settings of their loss, their Adam's settings and step count."""
    actor, critic = module_paths(learner.module[mid].unwrapped())
    shapes = tuple((tuple(layer.weight.shape), act) for layer, act in actor + critic)
    config = learner.config.get_config_for_module(mid)
    optimizer = learner.get_optimizers_for_module(mid)[0][1]
    settings = tuple(sorted((k, repr(v)) for k, v in optimizer.param_groups[0].items()
                            if k != "params"))
    step = optimizer.state.get(actor[0][0].weight, {}).get("step")
    return (shapes, tuple(getattr(config, k) for k in _LOSS_SETTINGS), settings,
            None if step is None else float(step))


def _categorical(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised log-probabilities and probabilities of ``Categorical(logits)``, as
    ``torch.distributions.Categorical`` computes them (``TorchCategorical``'s log-prob,
    entropy and KL are built on these), without its construction and argument checks."""
    log_p = logits - logits.logsumexp(dim=-1, keepdim=True)
    return log_p, torch.softmax(log_p, dim=-1)


def _categorical_kl(old_logits: torch.Tensor, log_p: torch.Tensor,
                    probs: torch.Tensor) -> torch.Tensor:
    """``KL(Categorical(old_logits) || Categorical(log_p))`` as torch's registered
    Categorical KL: infinite where the new probability is 0, a zero term where the old
    one is."""
    old_log_p, old_probs = _categorical(old_logits)
    t = old_probs * (old_log_p - log_p)
    t = torch.where(probs == 0, torch.inf, t)
    return torch.where(old_probs == 0, 0.0, t).sum(-1)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the last axis (rows), of the rows in ``mask`` where there is one."""
    if mask is None:
        return x.mean(-1)
    return torch.where(mask, x, 0).sum(-1) / mask.sum(-1)


class StackedPPO:
    """PPO's minibatch steps for a learner's modules, group by group (module doc)."""

    def __init__(self, learner: Any) -> None:
        self.learner = learner
        self.groups: list[_Group] | None = None
        #: the last step's loss terms and gradient norms, for :meth:`log_stats`
        self.last_step: tuple[list, list] | None = None

    def gather(self, module_ids: list[str]) -> None:
        """Group these modules of the learner and copy their parameters and Adam state
        into the stacks."""
        groups: dict[tuple, list[str]] = {}
        for mid in module_ids:
            groups.setdefault(_group_key(self.learner, mid), []).append(mid)
        self.groups = [_Group(self.learner, ids) for ids in groups.values()]

    def scatter(self) -> None:
        """Copy the stacks back into the modules and their optimizers (no-op when no
        stacks are live)."""
        if self.groups is not None:
            for group in self.groups:
                group.scatter()
            self.groups = None

    def covers(self, batch: dict[str, Any]) -> bool:
        """Whether :meth:`step` can take a minibatch: the modules stacked so far in this
        update (gathered now, from the minibatch's modules, if none are), each group's
        with the same number of rows."""
        if self.groups is None:
            self.gather(sorted(batch))
        if set(batch) != {m for g in self.groups for m in g.ids}:
            return False
        return all(len({batch[m][Columns.OBS].shape[0] for m in g.ids}) == 1
                   for g in self.groups)

    def step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One minibatch step of every module (:meth:`covers` must hold); each module's
        total loss."""
        assert self.groups is not None
        learner = self.learner
        losses, totals, terms = [], {}, []
        for group in self.groups:
            rows = [batch[m] for m in group.ids]
            b = {k: torch.stack([r[k] for r in rows]) for k in (
                Columns.OBS, Columns.ACTIONS, Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS,
                Postprocessing.ADVANTAGES, Postprocessing.VALUE_TARGETS)}
            mask = torch.stack([r[Columns.LOSS_MASK] for r in rows]) \
                if Columns.LOSS_MASK in rows[0] else None
            logits, values = group.forward(b[Columns.OBS])
            config = group.config
            log_p, probs = _categorical(logits)
            ratio = torch.exp(log_p.gather(-1, b[Columns.ACTIONS].long().unsqueeze(-1))
                              .squeeze(-1) - b[Columns.ACTION_LOGP])
            adv = b[Postprocessing.ADVANTAGES]
            surrogate = torch.min(adv * ratio, adv * torch.clamp(
                ratio, 1 - config.clip_param, 1 + config.clip_param))
            entropy = -(torch.clamp(log_p, min=torch.finfo(log_p.dtype).min) * probs).sum(-1)
            coeffs = torch.stack([torch.as_tensor(
                learner.entropy_coeff_schedulers_per_module[m].get_current_value(),
                dtype=logits.dtype) for m in group.ids]).reshape(-1, 1)
            vf_loss = torch.pow(values - b[Postprocessing.VALUE_TARGETS], 2.0)
            vf_clipped = torch.clamp(vf_loss, 0, config.vf_clip_param)
            total = _masked_mean(-surrogate + config.vf_loss_coeff * vf_clipped
                                 - coeffs * entropy, mask)
            kl = _categorical_kl(b[Columns.ACTION_DIST_INPUTS], log_p, probs) \
                if config.use_kl_loss else None
            if kl is not None:
                total = total + torch.stack([learner.curr_kl_coeffs_per_module[m]
                                             for m in group.ids]).reshape(-1) * \
                    _masked_mean(kl, mask)
            losses.append(total.sum())
            totals.update({mid: total[g].detach() for g, mid in enumerate(group.ids)})
            # the loss terms per row; their means are logged for the update's last step only
            terms.append((group, mask, b[Postprocessing.VALUE_TARGETS], {
                k: None if v is None else v.detach() for k, v in (
                    ("surrogate", surrogate), ("vf_loss", vf_loss), ("vf_clipped", vf_clipped),
                    ("entropy", entropy), ("kl", kl), ("values", values))}))
        for group in self.groups:
            group.adam.zero_grad(set_to_none=True)
        torch.stack(losses).sum().backward()
        norms = self._clip()
        self._zero_non_finite()
        for group in self.groups:
            group.adam.step()
        self.last_step = (terms, norms)
        return totals

    def _clip(self) -> list[torch.Tensor | None]:
        """RLlib's global-norm clipping (``clip_gradients``), per module of each group:
        per-tensor norms bounded by ``10e8`` (NaN as 0), their norm bounded again, the
        gradients scaled by ``grad_clip / max(norm + 1e-6, grad_clip)``. Each group's
        modules' global norms (None without clipping)."""
        out = []
        for group in self.groups:
            if not group.grad_clip:
                out.append(None)
                continue
            grads = [leaf.grad for leaf in group.leaves]
            norms = torch.stack([
                torch.linalg.vector_norm(g.flatten(1), dim=1).nan_to_num(
                    neginf=-_NORM_BOUND, posinf=_NORM_BOUND) for g in grads])
            total = torch.linalg.vector_norm(norms, dim=0).nan_to_num(
                neginf=-_NORM_BOUND, posinf=_NORM_BOUND)
            coeff = torch.clamp(group.grad_clip / torch.clamp(total + 1e-6, min=group.grad_clip),
                                max=1.0)
            for grad in grads:
                grad.mul_(coeff.view(-1, *[1] * (grad.dim() - 1)))
            out.append(total)
        return out

    def _zero_non_finite(self) -> None:
        """Non-finite gradients set to zero, with RLlib's warning (``apply_gradients``)."""
        grads = [leaf.grad for group in self.groups for leaf in group.leaves]
        if bool(torch.stack(torch._foreach_norm(grads)).isfinite().all()):
            return
        for group in self.groups:
            for leaf in group.leaves:
                if not torch.isfinite(leaf.grad).all():
                    logger.warning("Gradients of modules %s contain `nan/inf` values; "
                                   "setting them to zero (as RLlib's apply_gradients).",
                                   group.ids)
                    leaf.grad = torch.nan_to_num(leaf.grad)

    def log_stats(self) -> None:
        """Log the last step's loss terms per module, as ``PPOTorchLearner`` logs them
        (window 1: the last minibatch's values)."""
        if self.last_step is None:
            return
        learner = self.learner
        terms, norms = self.last_step
        for (group, mask, targets, t), norm in zip(terms, norms, strict=True):
            means = {
                POLICY_LOSS_KEY: -_masked_mean(t["surrogate"], mask),
                VF_LOSS_KEY: _masked_mean(t["vf_clipped"], mask),
                LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY: _masked_mean(t["vf_loss"], mask),
                ENTROPY_KEY: _masked_mean(t["entropy"], mask),
                LEARNER_RESULTS_KL_KEY: (torch.zeros(len(group.ids)) if t["kl"] is None
                                         else _masked_mean(t["kl"], mask)),
            }
            for g, mid in enumerate(group.ids):
                learner.metrics.log_dict({
                    **{k: v[g] for k, v in means.items()},
                    LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY: explained_variance(
                        targets[g], t["values"][g]),
                }, key=mid, window=1)
                if norm is not None:
                    name = learner.get_optimizers_for_module(mid)[0][0]
                    learner.metrics.log_value(key=(mid, f"gradients_{name}_global_norm"),
                                              value=norm[g], window=1)
        self.last_step = None
