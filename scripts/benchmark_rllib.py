#!/usr/bin/env python
"""Sampling throughput on Job Scheduling: RLlib default vs our tuned config vs a hand loop.

    python scripts/benchmark_rllib.py [--seconds 10] [--copies 32] \
        [--json results/rllib_throughput/README.json]

(a) default: RLlib's MultiAgentEnvRunner, 1 env, default model (256x256), RLlib's
    default action normalisation, torch's default thread count;
(b) tuned: what ``scripts/train.py --policy-mode shared --sampler vector
    --envs-per-runner COPIES`` trains with: the vector sampler
    (policies/vector_sampler.py: COPIES env copies x 4 agents as single-agent slots of
    RLlib's SingleAgentEnvRunner), 64x64 MLP, one torch thread, no action
    normalisation (discrete actions);
(c) hand loop: COPIES envs stepped in Python, one batched torch forward of the same
    64x64 MLP per step, sampling from the categorical distribution.
For reference also (b0): the multi-agent sampler with 16 envs per runner (the
tuned setting before the vector sampler). All in one process, one run; writes
results/rllib_throughput/README.md (--out) and, with --json, {"default", "tuned", "hand_loop",
"tuned_multi_agent_16"}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import numpy as np  # noqa: E402
import torch  # noqa: E402

import marl_envs  # noqa: E402
from policies.cli import output_file, positive_float, positive_int  # noqa: E402

ENV = "job_scheduling"


def _runner_rate(runner_cls, config, seconds: float, chunk: int) -> float:
    runner = runner_cls(config=config)
    runner.sample(num_timesteps=chunk)  # warm-up
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        eps = runner.sample(num_timesteps=chunk)
        steps += sum(e.agent_steps() for e in eps)
    rate = steps / (time.perf_counter() - start)
    runner.stop()
    return rate


def rllib_rate(envs: int, hiddens: list[int], seconds: float, *, defaults: bool) -> float:
    """MultiAgentEnvRunner over our adapter (``defaults``: RLlib's action normalisation)."""
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    from policies.config import build_config

    cfg = build_config(ENV, "ppo", "shared", num_env_runners=0, envs_per_runner=envs,
                       overrides={"model_config.fcnet_hiddens": hiddens})
    if defaults:
        cfg.environment(normalize_actions=True, clip_actions=False)
    return _runner_rate(MultiAgentEnvRunner, cfg, seconds, chunk=1000)


def vector_rate(copies: int, seconds: float) -> float:
    """The vector sampler exactly as train.py --sampler vector configures it."""
    from policies.config import build_config
    from policies.vector_sampler import VectorAgentEnvRunner

    cfg = build_config(ENV, "ppo", "shared", sampler="vector", num_env_runners=0,
                       envs_per_runner=copies)
    return _runner_rate(VectorAgentEnvRunner, cfg, seconds, chunk=4000)


def hand_loop_rate(envs: int, hiddens: list[int], seconds: float) -> float:
    env_list = [marl_envs.make(ENV) for _ in range(envs)]
    obs_dim = env_list[0].observation_space("agent_0").shape[0]
    layers: list[torch.nn.Module] = []
    d = obs_dim
    for h in hiddens:
        layers += [torch.nn.Linear(d, h), torch.nn.Tanh()]
        d = h
    net = torch.nn.Sequential(*layers, torch.nn.Linear(d, 5))
    obs = [e.reset(seed=i)[0] for i, e in enumerate(env_list)]
    steps, start = 0, time.perf_counter()
    with torch.no_grad():
        while time.perf_counter() - start < seconds:
            batch = np.stack([o[a] for o in obs for a in sorted(o)])
            logits = net(torch.from_numpy(batch))
            acts = torch.distributions.Categorical(logits=logits).sample().numpy()
            k = 0
            for i, e in enumerate(env_list):
                agents = sorted(obs[i])
                o, *_ = e.step({a: int(acts[k + j]) for j, a in enumerate(agents)})
                k += len(agents)
                steps += len(agents)
                obs[i] = o if e.agents else e.reset()[0]
    return steps / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=positive_float, default=10.0,
                   help="measuring time per setting")
    p.add_argument("--json", type=output_file, default=None,
                   help="write {default, tuned, hand_loop} here")
    p.add_argument("--copies", type=positive_int, default=32,
                   help="env copies of the tuned sampler and the hand loop (default 32)")
    p.add_argument("--out", default="results/rllib_throughput/README.md",
                   help="markdown report (default: %(default)s)")
    args = p.parse_args()
    default_threads = torch.get_num_threads()
    default = rllib_rate(1, [256, 256], args.seconds, defaults=True)
    torch.set_num_threads(1)
    tuned = vector_rate(args.copies, args.seconds)
    hand = hand_loop_rate(args.copies, [64, 64], args.seconds)
    multi16 = rllib_rate(16, [64, 64], args.seconds, defaults=False)
    figures = {"default": default, "tuned": tuned, "hand_loop": hand,
               "tuned_multi_agent_16": multi16}
    c = args.copies
    cmd = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    md = [
        "# RLlib sampling throughput on Job Scheduling (agent-steps/s)",
        "",
        f"Command: `{cmd}` (one run, {args.seconds:g} s per setting, "
        f"{os.cpu_count()} CPU cores shared with other work; torch default threads "
        f"{default_threads}).",
        "",
        "| sampler | agent-steps/s |",
        "|---|---|",
        "| (a) RLlib default: MultiAgentEnvRunner, 1 env, 256x256 MLP, action "
        f"normalisation on, default torch threads | {default:,.0f} |",
        f"| (b) tuned: `--sampler vector`, {c} env copies x 4 agents = {4 * c} slots of "
        f"SingleAgentEnvRunner, 64x64 MLP, 1 torch thread | {tuned:,.0f} |",
        f"| (c) hand loop: {c} envs, batched forward, same 64x64 MLP | {hand:,.0f} |",
        "| (b0) for reference: MultiAgentEnvRunner, 16 envs, 64x64 MLP, 1 torch thread "
        f"| {multi16:,.0f} |",
        "",
        f"(b)/(a) = {tuned / default:.1f}x (target >= 5x); (b)/(c) = {tuned / hand:.0%} "
        f"(target >= 30%); (b0)/(a) = {multi16 / default:.1f}x, (b0)/(c) = "
        f"{multi16 / hand:.0%}.",
        "",
        "(b) is the sampler of `scripts/train.py --env job_scheduling --algo ppo "
        f"--policy-mode shared --sampler vector --envs-per-runner {c}`; RLlib counts one "
        "step per slot, i.e. agent steps. All settings sample with exploration, in the "
        "driver process (no remote env runners), one after the other in one process.",
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(md))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
