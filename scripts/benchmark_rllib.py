#!/usr/bin/env python
"""Sampling throughput on Job Scheduling: RLlib default vs our tuned config vs a hand loop.

    python scripts/benchmark_rllib.py [--seconds 10] [--json results/rllib_throughput.json]

(a) default: RLlib's MultiAgentEnvRunner, 1 env, default model (256x256), torch's
    default thread count; (b) tuned: our config (16 envs per runner, 64x64 MLP, one
    torch thread); (c) hand loop: 16 envs stepped in Python, one batched torch forward
    of the same 64x64 MLP per step. All in one process, one run; writes
    results/rllib_throughput.md and, with --json, {"default", "tuned", "hand_loop"}.
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

ENV = "job_scheduling"


def _runner_rate(config, seconds: float) -> float:
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    runner = MultiAgentEnvRunner(config=config)
    runner.sample(num_timesteps=200)  # warm-up
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        eps = runner.sample(num_timesteps=1000)
        steps += sum(e.agent_steps() for e in eps)
    rate = steps / (time.perf_counter() - start)
    runner.stop()
    return rate


def rllib_rate(envs: int, hiddens: list[int], seconds: float) -> float:
    from policies.config import build_config

    cfg = build_config(ENV, "ppo", "shared", num_env_runners=0, envs_per_runner=envs,
                       overrides={"model_config.fcnet_hiddens": hiddens})
    return _runner_rate(cfg, seconds)


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
    p.add_argument("--seconds", type=float, default=10.0, help="measuring time per setting")
    p.add_argument("--json", default=None, help="write {default, tuned, hand_loop} here")
    p.add_argument("--out", default="results/rllib_throughput.md")
    args = p.parse_args()
    if args.seconds <= 0:
        print(f"error: --seconds must be > 0, got {args.seconds}", file=sys.stderr)
        return 2
    default_threads = torch.get_num_threads()
    default = rllib_rate(1, [256, 256], args.seconds)
    torch.set_num_threads(1)
    tuned = rllib_rate(16, [64, 64], args.seconds)
    hand = hand_loop_rate(16, [64, 64], args.seconds)
    figures = {"default": default, "tuned": tuned, "hand_loop": hand}
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
        f"| (a) RLlib default: 1 env, 256x256 MLP, default torch threads | {default:,.0f} |",
        f"| (b) tuned: 16 envs per runner, 64x64 MLP, 1 torch thread | {tuned:,.0f} |",
        f"| (c) hand loop: 16 envs, batched forward, same 64x64 MLP | {hand:,.0f} |",
        "",
        f"(b)/(a) = {tuned / default:.1f}x (target >= 5x); (b)/(c) = {tuned / hand:.0%} "
        "(target >= 30%).",
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
