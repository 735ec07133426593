#!/usr/bin/env python
"""FEN training throughput on Job Scheduling: the MultiAgentEnvRunner path FEN trained on
before the fast hierarchical sampler against today's default, in one run on one machine.

    python scripts/benchmark_fen_sampling.py [--iterations 8] [--warmup 1] \
        [--baseline-commit 4fb7de3] [--out results/fen_sampling/README.md]

Every setup trains FEN with build_fen_config's defaults (PPO settings, 4000 env steps per
iteration, minibatch, epochs), seed 0, 8 env copies, one after the other on 2 CPUs. The
first row is the code of ``--baseline-commit`` (the parent of the fast sampler's commit:
RLlib's MultiAgentEnvRunner and PPOTorchLearner, 1 remote env runner), run from a
temporary ``git worktree`` in a subprocess; the others are this tree's setups
(:data:`SETUPS`), which differ only in the sampler, where it runs and the learner class.
Env steps are counted as RLlib counts them for FEN (controller steps and base steps).
Throughput = env steps of the timed iterations / their wall time (sampling + learning);
the wall time of PPO's sampling and learner-update calls is reported beside it. Last, floors of the
default's iteration, measured the same way: stepping the env copies alone
(:func:`env_floor`), the learner update's arithmetic alone, module by module as RLlib
computes it and as the default's learner computes it (stacked, oneDNN's products:
:func:`learner_floor`), and of that the matrix products alone (:func:`gemm_floor`); env
stepping plus the arithmetic bounds what an implementation of these PPO settings with
these kernels could reach on this machine, env stepping plus the products what any
float32 one with these libraries could. Writes ``--out`` (.md) and the
same name with .json; an existing file is kept unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")

DEFAULT_OUT = "results/fen_sampling/README.md"
#: the parent of the fast sampler's commit (78005b2): FEN's MultiAgentEnvRunner path
BASELINE_COMMIT = "4fb7de3"
BASELINE, DEFAULT = "before", "default"
#: name -> (what it is, sampler, remote env runners, main-process CPUs, learner: "rllib"
#: PPOTorchLearner, "fen" FEN's, "unstacked" FEN's with module-by-module steps)
SETUPS: dict[str, tuple[str, str, int, int, str]] = {
    "multi_agent": ("this tree, RLlib's MultiAgentEnvRunner and PPOTorchLearner, 1 remote "
                    "env runner", "multi_agent", 1, 1, "rllib"),
    "vector_remote": ("fast sampler, FEN's learner (stacked, 2 threads), 1 remote env runner",
                      "vector", 1, 1, "fen"),
    "unstacked": ("fast sampler in the main process, FEN's learner with module-by-module "
                  "minibatch steps as RLlib's (2 threads), 2 main-process CPUs",
                  "vector", 0, 2, "unstacked"),
    DEFAULT: ("today's default (train_fen.py): fast sampler in the main process, FEN's "
              "learner (stacked minibatch steps, 2 threads), 2 main-process CPUs",
              "vector", 0, 2, "fen"),
}
_RESULT = "BENCHMARK-RESULT "


def time_training(config, iterations: int, warmup: int, frozen: bool) -> dict:
    """Build ``config``'s algorithm, train ``warmup`` then ``iterations`` iterations; the
    timed iterations' throughput, and the wall time of their sampling and learner update
    calls (PPO's ``synchronous_parallel_sample`` and ``learner_group.update``).
    ``frozen``: train as this tree's training loops do, with the objects that exist once
    the algorithm is built frozen out of full garbage collections
    (``policies.training.long_lived_objects_frozen``); the baseline's code did not."""
    import contextlib

    from ray.rllib.algorithms.ppo import ppo

    spent = {"sampling": 0.0, "learner": 0.0}

    def timed(key: str, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start
        return wrapper

    algo = config.build_algo()
    sample = ppo.synchronous_parallel_sample
    ppo.synchronous_parallel_sample = timed("sampling", sample)
    algo.learner_group.update = timed("learner", algo.learner_group.update)
    if frozen:  # as run_training: from the built algorithm on
        from policies.training import long_lived_objects_frozen

        freezing = long_lived_objects_frozen()
    else:
        freezing = contextlib.nullcontext()
    try:
        with freezing:
            for _ in range(warmup):
                algo.train()
            spent.update(sampling=0.0, learner=0.0)
            steps, minibatches, module_rows = 0, 0, {}
            start = time.perf_counter()
            for _ in range(iterations):
                result = algo.train()
                steps += int(result["env_runners"]["num_env_steps_sampled"])
                # every module trains on every minibatch step (RLlib's cyclic iterator)
                minibatches += max(int(v.get("num_module_steps_trained", 0))
                                   for k, v in result["learners"].items()
                                   if k != "__all_modules__") // config.minibatch_size
                for mid, n in result["env_runners"]["num_module_steps_sampled"].items():
                    module_rows[mid] = module_rows.get(mid, 0) + int(n)
            wall = time.perf_counter() - start
    finally:
        ppo.synchronous_parallel_sample = sample
        algo.stop()
    return {
        "iterations": iterations, "env_steps": steps, "wall_s": wall,
        "env_steps_per_s": steps / wall, "s_per_iteration": wall / iterations,
        "sampling_s_per_iteration": spent["sampling"] / iterations,
        "learner_update_s_per_iteration": spent["learner"] / iterations,
        "train_batch_size_per_learner": config.train_batch_size_per_learner,
        "minibatch_size": config.minibatch_size, "num_epochs": config.num_epochs,
        "rollout_fragment_length": config.get_rollout_fragment_length(),
        "learner": config.learner_class.__name__,
        "minibatch_steps_per_iteration": minibatches / iterations,
        "module_rows_per_iteration": {m: n / iterations for m, n in module_rows.items()},
    }


def setup_config(name: str, seed: int):
    """The FEN config of this tree's setup ``name`` (:data:`SETUPS`)."""
    from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner

    from policies.fen.config import build_fen_config

    _, sampler, runners, main_cpus, learner = SETUPS[name]
    config = build_fen_config("job_scheduling", "fen", seed=seed, num_env_runners=runners,
                              envs_per_runner=8, sampler=sampler, main_cpus=main_cpus)
    if learner == "rllib":
        config.learners(learner_class=PPOTorchLearner)
    elif learner == "unstacked":
        config.learners(learner_class=_unstacked_learner_class())
    return config


def _unstacked_learner_class():
    from policies.fen.learner import FENPPOTorchLearner

    class UnstackedFENLearner(FENPPOTorchLearner):
        """FEN's learner with RLlib's module-by-module minibatch steps."""

        stack_modules = False

    return UnstackedFENLearner


def run_setup(name: str, iterations: int, warmup: int, seed: int) -> dict:
    """Train FEN on Job Scheduling with this tree's setup ``name``."""
    from policies.fen.config import sampler_of

    what, _, runners, main_cpus, _ = SETUPS[name]
    config = setup_config(name, seed)
    return {"setup": name, "what": what, "sampler": sampler_of(config),
            "num_env_runners": runners, "main_cpus": main_cpus,
            **time_training(config, iterations, warmup, frozen=True)}


def env_floor(config, iterations: int, seed: int) -> float:
    """Seconds per iteration of stepping the run's 8 env copies alone (the adapter the
    samplers step, FEN's hierarchy and rhat included) for ``train_batch_size_per_learner``
    env steps, with uniform random actions drawn in bulk: no policy, no bookkeeping."""
    import numpy as np

    from policies.rllib_env import PettingZooMultiAgentEnv

    specs = config.rl_module_spec.rl_module_specs
    mapping = config.policy_mapping_fn
    envs = [PettingZooMultiAgentEnv(config.env_config) for _ in range(8)]
    n_actions: dict[str, int] = {}
    rng = np.random.default_rng(seed)
    uniform = iter(())
    # the ids that act next: those with an observation that did not just end
    acting = [list(env.reset(seed=seed + i)[0]) for i, env in enumerate(envs)]
    start = time.perf_counter()
    for _ in range(iterations):
        env_ts = 0
        while env_ts < config.train_batch_size_per_learner:
            for i, env in enumerate(envs):
                actions = {}
                for aid in acting[i]:
                    n = n_actions.get(aid)
                    if n is None:
                        n = n_actions[aid] = int(specs[mapping(aid, None)].action_space.n)
                    u = next(uniform, None)
                    if u is None:
                        uniform = iter(rng.random(65536).tolist())
                        u = next(uniform)
                    actions[aid] = int(u * n)
                obs, _, terms, truncs, _ = env.step(actions)
                env_ts += 1
                if terms.get("__all__") or truncs.get("__all__"):
                    acting[i] = list(env.reset()[0])
                else:
                    acting[i] = [a for a in obs if not (terms.get(a) or truncs.get(a))]
    return (time.perf_counter() - start) / iterations


def _floor_setup(config, module_rows: dict[str, float], seed: int):
    """The config's modules, random minibatch data of each (the arithmetic does not depend
    on the data) and the observations of FEN's discriminator pass per controller (the
    rows of its sub-policies)."""
    import torch

    from policies.fen.variants import parse_sub_module_id

    torch.manual_seed(seed)
    modules = config.rl_module_spec.build()
    rows: dict[str, int] = {}  # controller -> rows of its sub-policies
    for mid in modules.keys():
        sub = parse_sub_module_id(mid)
        if sub is not None:
            rows[sub[0]] = rows.get(sub[0], 0) + int(module_rows.get(mid, 0))
    judged = {ctrl: torch.randn(n, modules[ctrl].observation_space.shape[0])
              for ctrl, n in rows.items()}
    mb = config.minibatch_size
    data = {}
    for mid, module in modules.items():
        dim, n = module.observation_space.shape[0], int(module.action_space.n)
        data[mid] = {"obs": torch.randn(mb, dim), "actions": torch.randint(0, n, (mb,)),
                     "logp": -torch.rand(mb), "adv": torch.randn(mb), "target": torch.randn(mb),
                     "old_logits": torch.randn(mb, n),
                     "all_obs": torch.randn(int(module_rows.get(mid, mb)), dim)}
    return modules, data, judged


def ppo_loss(config, logits, values, b: dict):
    """PPO's loss as RLlib's PPOTorchLearner weighs it (clipped surrogate, KL to the
    sampling policy, entropy, clipped value loss), averaged over the last row axis: one
    module's scalar, or with a leading module axis (a stack) one loss per module."""
    import torch

    log_p = torch.log_softmax(logits, -1)
    ratio = torch.exp(log_p.gather(-1, b["actions"].unsqueeze(-1)).squeeze(-1) - b["logp"])
    surrogate = torch.min(b["adv"] * ratio, b["adv"] * torch.clamp(
        ratio, 1 - config.clip_param, 1 + config.clip_param))
    old = torch.log_softmax(b["old_logits"], -1)
    kl = (old.exp() * (old - log_p)).sum(-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    vf_loss = torch.clamp((values - b["target"]) ** 2, 0, config.vf_clip_param)
    return (torch.mean(-surrogate + config.vf_loss_coeff * vf_loss
                       - config.entropy_coeff * entropy, -1)
            + config.kl_coeff * torch.mean(kl, -1))


def module_step(config, modules, data: dict, optimizers: dict) -> None:
    """One minibatch step module by module, as RLlib's learner computes it: every module's
    forward and PPO loss, one backward of the summed losses, then per module global-norm
    gradient clipping and its Adam step."""
    import torch
    from ray.rllib.core.columns import Columns

    losses = []
    for mid, module in modules.items():
        b = data[mid]
        out = module.forward_train({Columns.OBS: b["obs"]})
        values = module.compute_values({Columns.OBS: b["obs"]},
                                       embeddings=out[Columns.EMBEDDINGS])
        losses.append(ppo_loss(config, out[Columns.ACTION_DIST_INPUTS], values, b))
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)
    torch.stack(losses).sum().backward()
    for mid, module in modules.items():
        torch.nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip, foreach=True)
        optimizers[mid].step()


def _linears(seq) -> list:
    """The Linear layers of an MLP ``Sequential``, checking the ReLUs between them."""
    import torch

    layers = [x for x in seq if isinstance(x, torch.nn.Linear)]
    relus = [x for x in seq if isinstance(x, torch.nn.ReLU)]
    if len(layers) + len(relus) != len(seq):
        raise ValueError(f"the product floor handles Linear/ReLU MLPs, not {seq}")
    return layers


def _stacked_setup(config, data: dict):
    """The config's own learner (built from its module spaces) and one minibatch of
    ``data`` (:func:`_floor_setup`) as :class:`policies.stacked_ppo.StackedPPO` takes it."""
    import torch
    from ray.rllib.core.columns import Columns
    from ray.rllib.evaluation.postprocessing import Postprocessing

    spec = config.rl_module_spec
    learner = config.build_learner(spaces={
        mid: (s.observation_space, s.action_space) for mid, s in spec.rl_module_specs.items()})
    columns = {Columns.OBS: "obs", Columns.ACTIONS: "actions", Columns.ACTION_LOGP: "logp",
               Columns.ACTION_DIST_INPUTS: "old_logits", Postprocessing.ADVANTAGES: "adv",
               Postprocessing.VALUE_TARGETS: "target"}
    batch = {mid: {col: torch.as_tensor(b[k]) for col, k in columns.items()}
             for mid, b in data.items()}
    return learner, batch


def learner_floor(config, minibatch_steps: int, module_rows: dict[str, float],
                  threads: int, iterations: int, seed: int, stacked: bool) -> float:
    """Seconds per iteration of the learner update's arithmetic alone on the config's
    modules with ``threads`` torch threads: the value pass over a batch of
    ``module_rows`` rows per module (GAE's) and FEN's discriminator pass (each controller
    over its sub-policies' rows, :mod:`policies.fen.discriminator`), then
    ``minibatch_steps`` steps of ``minibatch_size`` rows per module. Module by module
    (:func:`module_step`, the modules' own forward passes: RLlib's arithmetic, MKL's
    products) or, ``stacked``, the default learner's own arithmetic: its value and
    discriminator passes (``path_forward``) and :class:`policies.stacked_ppo.StackedPPO`'s
    steps (oneDNN's products; checked against ``PPOTorchLearner`` by
    ``tests/test_fen_learner.py``). No connectors, no batch building, no metrics, no
    RLlib update loop: what a learner with these PPO settings must compute. The best of
    ``iterations`` timings (the machine is shared); fresh tensors are not NaN-filled
    (as in the default's update, :class:`policies.fen.learner.FENPPOTorchLearner`)."""
    import torch
    from ray.rllib.core.columns import Columns

    from policies.ppo_mlp import actor_path, critic_path, path_forward
    from policies.stacked_ppo import StackedPPO

    modules, data, judged = _floor_setup(config, module_rows, seed)
    if stacked:
        learner, batch = _stacked_setup(config, data)
        steps = StackedPPO(learner)
        steps.gather(sorted(batch))
        paths = {mid: (critic_path(m), actor_path(m)) for mid, m in learner.module.items()}
    else:
        optimizers = {mid: torch.optim.Adam(m.parameters(), lr=config.lr, fused=True)
                      for mid, m in modules.items()}
    before = torch.get_num_threads()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.set_num_threads(threads)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        best = float("inf")
        for _ in range(iterations):
            start = time.perf_counter()
            with torch.no_grad():
                for mid, module in modules.items():
                    if stacked:
                        path_forward(paths[mid][0], data[mid]["all_obs"])
                    else:
                        module.compute_values({Columns.OBS: data[mid]["all_obs"]})
                for ctrl, obs in judged.items():
                    if stacked:
                        path_forward(paths[ctrl][1], obs)
                    else:
                        modules[ctrl].forward_inference({Columns.OBS: obs})
            for _ in range(minibatch_steps):
                if stacked:
                    steps.step(batch)
                else:
                    module_step(config, modules, data, optimizers)
            best = min(best, time.perf_counter() - start)
        return best
    finally:
        torch.set_num_threads(before)
        torch.utils.deterministic.fill_uninitialized_memory = fill


def gemm_floor(config, minibatch_steps: int, module_rows: dict[str, float],
               threads: int, repeats: int, seed: int) -> float:
    """Seconds per iteration of the matrix products alone of :func:`learner_floor`'s
    arithmetic (float32, ``threads`` torch threads): per minibatch step and module, each
    Linear layer's forward product and its backward products (the weight's gradient, and
    the input's except at the first layer); the value pass (critic) and the
    discriminator pass (controller's actor) forward. Every product shape is timed
    ``repeats`` times with each of this build's float32 products, MKL's (``a @ b``) and
    oneDNN's (:mod:`policies.onednn_linear`, where the build has it), on contiguous
    operands; the best timing of either, times how often an iteration computes it: no
    elementwise work (ReLU, loss, clipping, Adam) and no layout copies at all, so no
    float32 implementation on this machine with these libraries computes the update in
    less."""
    import torch

    from policies import onednn_linear

    modules, _, judged = _floor_setup(config, module_rows, seed)
    mb = config.minibatch_size
    count: dict[tuple[int, int, int], float] = {}  # (rows, inner, cols) -> per iteration

    def gemm(m: int, k: int, n: int, times: float) -> None:
        count[(m, k, n)] = count.get((m, k, n), 0.0) + times

    for mid, module in modules.items():
        actor = _linears(module.encoder.actor_encoder.net.mlp) + _linears(module.pi.net.mlp)
        critic = _linears(module.encoder.critic_encoder.net.mlp) + _linears(module.vf.net.mlp)
        for path in (actor, critic):
            for j, layer in enumerate(path):
                n_out, n_in = layer.weight.shape
                gemm(mb, n_in, n_out, minibatch_steps)  # forward
                gemm(n_in, mb, n_out, minibatch_steps)  # weight gradient
                if j:
                    gemm(mb, n_out, n_in, minibatch_steps)  # input gradient
        for layer in critic:  # the value pass over the module's rows
            gemm(int(module_rows.get(mid, mb)), layer.weight.shape[1], layer.weight.shape[0], 1)
        if mid in judged:  # the discriminator pass over its sub-policies' rows
            for layer in actor:
                gemm(judged[mid].shape[0], layer.weight.shape[1], layer.weight.shape[0], 1)
    before = torch.get_num_threads()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.set_num_threads(threads)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        total = 0.0
        for (m, k, n), times in count.items():
            a, b = torch.randn(m, k), torch.randn(k, n)
            # MKL's a @ b; oneDNN's inner product takes b as its weight, [cols, inner]
            products = [(torch.matmul, b)]
            if onednn_linear.available():
                products.append((lambda x, w: onednn_linear.linear(x, w, None),
                                 b.t().contiguous()))
            best = float("inf")
            for product, operand in products:
                for _ in range(repeats):
                    start = time.perf_counter()
                    product(a, operand)
                    best = min(best, time.perf_counter() - start)
            total += best * times
        return total
    finally:
        torch.set_num_threads(before)
        torch.utils.deterministic.fill_uninitialized_memory = fill


def measure_floors(row: dict, iterations: int, seed: int) -> dict:
    """:func:`env_floor` and :func:`learner_floor` (module by module and stacked) of the
    :data:`DEFAULT` setup, whose timed ``row`` gives the minibatch steps and rows per
    module of an iteration."""
    from policies.fen.learner import update_threads

    config = setup_config(DEFAULT, seed)
    steps = round(row["minibatch_steps_per_iteration"])
    threads = update_threads(config, True)
    rows = row["module_rows_per_iteration"]
    return {
        "env_s_per_iteration": env_floor(config, iterations, seed),
        "learner_s_per_iteration": learner_floor(
            config, steps, rows, threads, iterations, seed, stacked=False),
        "stacked_learner_s_per_iteration": learner_floor(
            config, steps, rows, threads, iterations, seed, stacked=True),
        "gemm_s_per_iteration": gemm_floor(config, steps, rows, threads, 20, seed),
        "minibatch_steps_per_iteration": steps, "learner_threads": threads,
        "iterations": iterations,
    }


def run_commit(commit: str, iterations: int, warmup: int, seed: int) -> dict:
    """Train FEN on Job Scheduling as the code of ``commit`` does (its build_fen_config
    defaults, 1 remote env runner x 8 copies), from a temporary git worktree."""
    with tempfile.TemporaryDirectory(prefix="fen-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        git = ["git", "-C", str(ROOT)]
        done = subprocess.run([*git, "worktree", "add", "--detach", str(tree), commit],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"cannot check out --baseline-commit {commit!r} (needs this "
                             f"repository's history): {done.stderr.strip()}")
        try:
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--_in-tree", str(tree),
                 "--iterations", str(iterations), "--warmup", str(warmup),
                 "--seed", str(seed)],
                capture_output=True, text=True, cwd=tree)
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)],
                           capture_output=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith(_RESULT)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"the baseline run at {commit} failed:\n{proc.stderr[-3000:]}")
    row = json.loads(lines[-1][len(_RESULT):])
    return {"setup": BASELINE, "what": f"the code at {commit} (before the fast sampler): "
            "RLlib's MultiAgentEnvRunner and PPOTorchLearner, 1 remote env runner",
            "sampler": "multi_agent", "num_env_runners": 1, "main_cpus": 1, **row}


def _in_tree(tree: str, iterations: int, warmup: int, seed: int) -> int:
    """The subprocess of :func:`run_commit`: the old tree's FEN config, timed."""
    sys.path.insert(0, tree)
    from policies.fen.config import build_fen_config
    from policies.training import init_ray

    init_ray(num_cpus=2)
    config = build_fen_config("job_scheduling", "fen", seed=seed, num_env_runners=1,
                              envs_per_runner=8)
    print(_RESULT + json.dumps(time_training(config, iterations, warmup, frozen=False)),
          flush=True)
    return 0


def render(rows: dict[str, dict], floors: dict, command: str,
           load: dict[str, list[float]]) -> str:
    base, default = rows[BASELINE], rows[DEFAULT]
    lines = [
        "# FEN training throughput on Job Scheduling: before the fast sampler vs today",
        "",
        f"Command: `{command}`",
        "",
        f"One run, one machine ({platform.machine()}, {os.cpu_count()} CPUs shared with other "
        f"work); load average (1/5/15 min) before: {load['before']}, after: {load['after']}.",
        f"FEN defaults of build_fen_config, seed 0, 8 env copies; "
        f"{base['train_batch_size_per_learner']} env steps per iteration, minibatch "
        f"{base['minibatch_size']}, {base['num_epochs']} epochs (the same for every setup); "
        f"{base['iterations']} timed iterations each after warm-up; sampling and learner "
        f"update: the wall time of PPO's sampling and learner-update calls. An iteration's "
        f"learner update grows with its minibatch steps: RLlib's cyclic iterator runs until "
        f"the module with the most rows has seen {base['num_epochs']} epochs, so their "
        f"number follows how the controllers spread the agents over the sub-policies.",
        "",
        "| setup | env steps/s (sampling + learning) | s / iteration | sampling s / it. "
        "| learner update s / it. | minibatch steps / it. | rollout fragment "
        "| ratio to before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows.values():
        lines.append(
            f"| {r['setup']}: {r['what']} | {r['env_steps_per_s']:,.0f} | "
            f"{r['s_per_iteration']:.2f} | {r['sampling_s_per_iteration']:.2f} | "
            f"{r['learner_update_s_per_iteration']:.2f} | "
            f"{r['minibatch_steps_per_iteration']:.1f} | {r['rollout_fragment_length']} | "
            f"{r['env_steps_per_s'] / base['env_steps_per_s']:.2f}x |")
    ratio = default["env_steps_per_s"] / base["env_steps_per_s"]
    learn = default["learner_update_s_per_iteration"]
    env_s, gemm_s = floors["env_s_per_iteration"], floors["gemm_s_per_iteration"]
    module_s = floors["learner_s_per_iteration"]
    stacked_s = floors["stacked_learner_s_per_iteration"]
    arith_s = min(module_s, stacked_s)
    floor, target = env_s + arith_s, base["s_per_iteration"] / 5
    # the learner's work per iteration follows the minibatch steps, which differ between
    # runs by chance: default's iteration with before's number of steps, as context
    per_step = learn / max(default["minibatch_steps_per_iteration"], 1e-9)
    at_base = (default["s_per_iteration"] - learn
               + per_step * base["minibatch_steps_per_iteration"])
    lines += [
        "",
        f"**Ratio {DEFAULT} / {BASELINE}: {ratio:.2f}x** (target >= 5x).",
        "",
        f"The rows' learner work differs by chance: {DEFAULT} ran "
        f"{default['minibatch_steps_per_iteration']:.1f} minibatch steps per iteration, "
        f"{BASELINE} {base['minibatch_steps_per_iteration']:.1f} (the number follows how the "
        f"controllers spread the agents over the sub-policies in each run). For context "
        f"only, not the measure of the target: with {BASELINE}'s number of steps at its own "
        f"{per_step * 1000:.1f} ms per step, {DEFAULT}'s iteration would take "
        f"{at_base:.2f} s, {base['s_per_iteration'] / at_base:.2f}x.",
        "",
        f"Bound: {DEFAULT}'s iteration is {default['s_per_iteration']:.2f} s, of which the "
        f"learner update (the train batch, built by `policies/fen/train_batch.py` as "
        f"RLlib's learner connectors build it, and PPO's minibatch steps, stacked: "
        f"`policies/stacked_ppo.py`; the same update as {BASELINE}'s, "
        f"`tests/test_fen_learner.py`) takes {learn:.2f} s; with sampling free, no sampler "
        f"could exceed {base['s_per_iteration'] / max(learn, 1e-9):.1f}x with this learner "
        "on this machine.",
        "",
        "Floors, measured in this run with the default's config (`env_floor`, "
        "`learner_floor` and `gemm_floor` in the script): what an iteration costs with no "
        "sampler and no learner overhead at all.",
        "",
        f"* Stepping the 8 env copies alone (FEN's hierarchy and rhat included; uniform "
        f"random actions, no policy, no bookkeeping) for one iteration's "
        f"{base['train_batch_size_per_learner']} env steps: **{env_s:.2f} s** "
        f"({DEFAULT}'s sampling: {default['sampling_s_per_iteration']:.2f} s).",
        f"* The learner update's arithmetic alone, with "
        f"{floors['learner_threads']} threads: the value pass over the batch and FEN's "
        f"discriminator pass (the controller over the sub-policies' observations), then "
        f"{floors['minibatch_steps_per_iteration']} minibatch steps (as many as RLlib's "
        f"cyclic iterator took per iteration: it runs until the largest module has seen "
        f"{base['num_epochs']} epochs, every module training on every step), each the "
        f"forward, PPO loss, backward, gradient clipping and Adam step of every module on "
        f"{base['minibatch_size']} rows (best of {floors['iterations']} timings). Module "
        f"by module, as RLlib computes it (the modules' own forward passes, MKL's "
        f"products): **{module_s:.2f} s**; as {DEFAULT}'s learner computes it (its value "
        f"and discriminator passes and `StackedPPO`'s steps on random minibatches: the "
        f"four sub-policies as one group, each layer's products on oneDNN, "
        f"`policies/onednn_linear.py`; no batch building, no RLlib update loop): "
        f"**{stacked_s:.2f} s** ({DEFAULT}'s learner update: {learn:.2f} s).",
        f"* Of that arithmetic, the matrix products alone (float32, best of 20 timings per "
        f"product shape with MKL's and with oneDNN's products, contiguous operands, times "
        f"how often an iteration computes it): **{gemm_s:.2f} s**. The rest is "
        f"elementwise work (biases, ReLUs and their gradients, the loss, clipping, Adam), "
        f"layout copies and per-call costs, which eager torch runs as separate passes.",
        f"* Env stepping plus the learner arithmetic (the faster of the two): "
        f"{floor:.2f} s per iteration, **at most {base['s_per_iteration'] / floor:.1f}x** "
        f"{BASELINE}'s {base['s_per_iteration']:.2f} s for an implementation of these PPO "
        "settings with these kernels on this machine that steps these env copies and does "
        "not overlap sampling with learning (overlap would train on stale weights, not the "
        f"same learning). 5x is {target:.2f} s per iteration: {target - floor:.2f} s above "
        f"these floors for all the overhead of sampling, learning and RLlib's iteration, "
        f"which takes {default['s_per_iteration'] - floor:.2f} s in {DEFAULT} today "
        f"(sampling {default['sampling_s_per_iteration'] - env_s:.2f} s and the learner "
        f"update {learn - arith_s:.2f} s above their floors, the rest of RLlib's iteration "
        f"{default['s_per_iteration'] - default['sampling_s_per_iteration'] - learn:.2f} s).",
        f"* Env stepping plus the matrix products alone: {env_s + gemm_s:.2f} s, at most "
        f"{base['s_per_iteration'] / (env_s + gemm_s):.1f}x: the bound for any float32 "
        f"implementation with these libraries, even one that fused all elementwise work "
        f"into the products.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=8, help="timed iterations per setup")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline-commit", default=BASELINE_COMMIT,
                   help=f"the commit whose FEN path is the baseline (default {BASELINE_COMMIT})")
    p.add_argument("--out", default=None, help=f"markdown file (default {DEFAULT_OUT}; an "
                                               "existing file is overwritten only when given)")
    p.add_argument("--_in-tree", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.iterations < 1 or args.warmup < 0:
        print("--iterations must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    if args._in_tree:
        return _in_tree(args._in_tree, args.iterations, args.warmup, args.seed)
    out = Path(args.out or DEFAULT_OUT)
    out_json = out.with_suffix(".json")
    if args.out is None and (out.exists() or out_json.exists()):
        print(f"{out} exists; pass --out to overwrite or write elsewhere", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    command = " ".join(["python scripts/benchmark_fen_sampling.py", *sys.argv[1:]])
    load_before = [round(x, 2) for x in os.getloadavg()]
    total = 1 + len(SETUPS)
    rows = {BASELINE: run_commit(args.baseline_commit, args.iterations, args.warmup,
                                 args.seed)}
    print(f"[1/{total}] {BASELINE}: {rows[BASELINE]['env_steps_per_s']:,.0f} env steps/s",
          flush=True)
    from policies.training import init_ray

    init_ray(num_cpus=2)
    for k, name in enumerate(SETUPS):
        rows[name] = run_setup(name, args.iterations, args.warmup, args.seed)
        print(f"[{k + 2}/{total}] {name}: {rows[name]['env_steps_per_s']:,.0f} env steps/s",
              flush=True)
    floors = measure_floors(rows[DEFAULT], args.iterations, args.seed)
    print(f"floors: env stepping {floors['env_s_per_iteration']:.2f} s/it, learner "
          f"arithmetic {floors['learner_s_per_iteration']:.2f} s/it (stacked "
          f"{floors['stacked_learner_s_per_iteration']:.2f}, matrix products "
          f"{floors['gemm_s_per_iteration']:.2f})", flush=True)
    load = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(rows, floors, command, load))
    ratio = rows[DEFAULT]["env_steps_per_s"] / rows[BASELINE]["env_steps_per_s"]
    out_json.write_text(json.dumps({"command": command, "load_average": load, "ratio": ratio,
                                    **rows, "floors": floors}, indent=2) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
