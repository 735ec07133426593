"""FEN's env wrappers: hierarchical bookkeeping, flat rhat, baseline shapings."""

import numpy as np
import pytest

import marl_envs
from policies.fen.envs import (
    FairEfficientRewardEnv,
    FENHierarchyEnv,
    ShapedRewardEnv,
    controller_id,
    subpolicy_id,
)
from policies.fen.reward import fair_efficient_reward

T = 5


def _hier(max_cycles=23, **kw):
    return FENHierarchyEnv(marl_envs.make("job_scheduling", max_cycles=max_cycles), period=T, **kw)


def test_controller_acts_exactly_every_T_steps_and_the_chosen_subpolicy_acts_between():
    env = _hier()
    obs, _ = env.reset(seed=3)
    agents = env.base.possible_agents
    assert set(obs) == {controller_id(a, 0) for a in agents}
    rng = np.random.default_rng(0)
    controller_steps, base_steps, k = [], 0, 0
    while env.agents:
        if env.agents[0].split("/")[1] == "ctrl":
            assert set(env.agents) == {controller_id(a, k) for a in agents}
            controller_steps.append(env.base.num_steps)
            z = {a: int(rng.integers(4)) for a in agents}
            obs, rew, term, trunc, _ = env.step({controller_id(a, k): z[a] for a in agents})
            assert set(env.agents) == {subpolicy_id(a, k, z[a]) for a in agents}
            assert env.base.num_steps == controller_steps[-1]  # the base env did not move
            k += 1
        else:
            acting = list(env.agents)
            obs, rew, term, trunc, _ = env.step({a: 0 for a in acting})
            base_steps += 1
            # while a period runs, the same sub-policy ids keep acting
            if env.agents and env.agents[0].split("/")[1] == "sub":
                assert env.agents == acting
    assert controller_steps == [0, 5, 10, 15, 20]
    assert base_steps == 23 and env.base.num_steps == 23


def test_rewards_reach_the_right_agents():
    # the authors' behaviour: rhat over the episode, each period's segment terminated
    env = _hier(efficiency="episode", segment_end="terminate")
    env.reset(seed=0)
    agents = env.base.possible_agents
    # agent_0 runs sub-policy 0 (env reward), the others sub-policy 2 (intrinsic: 0 here)
    env.step({controller_id(a, 0): (0 if a == "agent_0" else 2) for a in agents})
    # put agent_0 on the resource and keep everyone still
    env.base._positions[0] = env.base._resource
    env.base._positions[1:] = [[1, 1], [1, 2], [2, 1]] if tuple(env.base._resource) != (1, 1) \
        else [[5, 5], [5, 4], [4, 5]]
    env.base._occupied[:] = False
    env.base._occupied[env.base._positions[:, 0], env.base._positions[:, 1]] = True
    for _ in range(T):
        obs, rew, term, trunc, infos = env.step({a: 0 for a in env.agents})
        assert rew[subpolicy_id("agent_0", 0, 0)] == 1.0
        assert rew[subpolicy_id("agent_1", 0, 2)] == 0.0
    # end of period: segments terminate; the next decisions are requested
    u = env.base.reward_sums / env.base.num_steps
    rhat = fair_efficient_reward(u, u.mean(), 0.25)
    for i, a in enumerate(agents):
        assert term[subpolicy_id(a, 0, 0 if i == 0 else 2)]
        assert not term[controller_id(a, 1)]
        assert controller_id(a, 0) not in obs  # still running until the next decision
    assert set(env.agents) == {controller_id(a, 1) for a in agents}
    # observations carry the controller features [(u - ubar)/ubar, min(1, ubar/c)]
    o = obs[controller_id("agent_0", 1)]
    assert o.shape == (15,)
    assert o[13] == pytest.approx(3.0) and o[14] == pytest.approx(1.0)
    # the controller step closes the finished decisions with their rhat
    obs, rew, term, trunc, infos = env.step({controller_id(a, 1): 1 for a in agents})
    for i, a in enumerate(agents):
        assert term[controller_id(a, 0)]
        assert rew[controller_id(a, 0)] == pytest.approx(rhat[i])
        assert infos[controller_id(a, 0)]["fair_efficient_reward"] == pytest.approx(rhat[i])
        assert not term[subpolicy_id(a, 1, 1)]


def _place(env, holder):
    """Agent ``holder`` (an index, or None for nobody) on the resource, the rest in corners
    (the resource is never in a corner)."""
    pos = np.array([[1, 1], [1, 5], [5, 1], [5, 5]])
    if holder is not None:
        pos[holder] = env.base._resource
    env.base._positions[:] = pos
    env.base._occupied[:] = False
    env.base._occupied[pos[:, 0], pos[:, 1]] = True


@pytest.mark.parametrize("window", ["episode", "period"])
def test_efficiency_window_of_rhat(window):
    env = _hier(efficiency=window)
    env.reset(seed=0)
    agents = env.base.possible_agents
    for k, holder in enumerate([0, None]):  # agent_0 holds the resource, then nobody does
        env.step({controller_id(a, k): 0 for a in agents})
        _place(env, holder)
        for _ in range(T):
            env.step({a: 0 for a in env.agents})
    _, rew, *_ = env.step({controller_id(a, 2): 0 for a in agents})
    u = np.array([0.5, 0.0, 0.0, 0.0])  # 5 of 10 steps on the resource
    np.testing.assert_allclose(env.base.reward_sums / env.base.num_steps, u)
    efficiency_average = u.mean() if window == "episode" else 0.0  # the idle period
    expected = fair_efficient_reward(u, u.mean(), 0.25, efficiency_average=efficiency_average)
    got = [rew[controller_id(a, 1)] for a in agents]
    np.testing.assert_allclose(got, expected)
    assert (max(got) == 0.0) == (window == "period")


def test_efficiency_window_is_checked():
    with pytest.raises(ValueError, match="unknown efficiency window 'weekly'"):
        _hier(efficiency="weekly")


def _play(env, seed, choices):
    """Run one episode, the controllers choosing ``choices[k][i]`` in period k, every
    sub-policy action 0; the (acting ids, rewards, terminateds) of every step."""
    env.reset(seed=seed)
    steps, k = [], 0
    while env.agents:
        acting = list(env.agents)
        if acting[0].split("/")[1] == "ctrl":
            _, rew, term, *_ = env.step({a: choices[k][i] for i, a in enumerate(acting)})
            k += 1
        else:
            _, rew, term, *_ = env.step({a: 0 for a in acting})
        steps.append((acting, rew, term))
    return steps


def test_episode_horizon_keeps_one_controller_per_agent_rewarded_with_each_periods_rhat():
    choices = [[k % 4, (k + 1) % 4, 0, 2] for k in range(5)]
    per_period = _play(_hier(), 4, choices)
    episode = _play(_hier(controller_horizon="episode"), 4, choices)
    agents = marl_envs.make("job_scheduling").possible_agents
    ctrl = [f"{a}/ctrl" for a in agents]
    # the same episode: the same base dynamics and sub-policy ids and rewards
    assert len(per_period) == len(episode)
    ctrl_rewards, ctrl_terms = [], []
    for (ids_p, rew_p, _), (ids_e, rew_e, term_e) in zip(per_period, episode, strict=True):
        assert [i for i in ids_e if "/sub/" in i] == [i for i in ids_p if "/sub/" in i]
        if "/ctrl" in ids_e[0]:
            assert ids_e == ctrl  # the same four ids decide every period
        for sid in rew_p:
            if "/sub/" in sid:
                assert rew_e[sid] == rew_p[sid]
        got = [c for c in ctrl if c in rew_e]
        if got:
            ctrl_rewards.append([rew_e[c] for c in ctrl])
            ctrl_terms.append([term_e[c] for c in ctrl])
    # each period end hands the controllers that period's rhat: the same numbers the
    # one-step decisions of the default horizon get
    closed = [[rew[controller_id(a, k)] for a in agents]
              for k in range(5) for _, rew, term in per_period
              if controller_id(agents[0], k) in term and term[controller_id(agents[0], k)]]
    np.testing.assert_allclose(ctrl_rewards, closed)
    assert ctrl_terms == [[False] * 4] * 4 + [[True] * 4]  # only the episode's end ends them
    env = _hier(controller_horizon="episode")
    assert env.observation_space("agent_0/ctrl").shape == (15,)
    with pytest.raises(ValueError, match="allowed: '<agent>/ctrl' or"):
        env.action_space("agent_0/ctrl/0")
    with pytest.raises(ValueError, match="unknown controller horizon 'week'"):
        _hier(controller_horizon="week")
    with pytest.raises(ValueError, match="controller_reward_scale must be > 0, got 0"):
        _hier(controller_horizon="episode", controller_reward_scale=0)
    scaled = _play(_hier(controller_horizon="episode", controller_reward_scale=0.5), 4, choices)
    half = [[rew[c] for c in ctrl] for _, rew, _ in scaled if ctrl[0] in rew]
    np.testing.assert_allclose(half, 0.5 * np.array(ctrl_rewards))


def test_truncated_segments_end_with_their_period_but_terminate_with_the_episode():
    choices = [[k % 4, (k + 1) % 4, 0, 2] for k in range(5)]
    ends = {}
    for segment_end in ("terminate", "truncate"):
        env = _hier(segment_end=segment_end)
        env.reset(seed=4)
        ends[segment_end], k = [], 0
        while env.agents:
            acting = list(env.agents)
            if "/ctrl/" in acting[0]:
                actions = {a: choices[k][i] for i, a in enumerate(acting)}
                k += 1
            else:
                actions = dict.fromkeys(acting, 0)
            _, rew, term, trunc, _ = env.step(actions)
            ends[segment_end] += [(sid, rew[sid], term[sid], trunc[sid])
                                  for sid in acting if "/sub/" in sid and (term[sid] or trunc[sid])]
            assert set(term) == set(trunc)
    default, cut = ends["terminate"], ends["truncate"]
    # the same segments end at the same steps with the same rewards
    assert [(s, r) for s, r, *_ in default] == [(s, r) for s, r, *_ in cut]
    assert all(t and not tr for _, _, t, tr in default)
    last_period = {s for s, *_ in cut if s.split("/")[2] == "4"}  # 23 steps, T = 5
    assert len(last_period) == 4
    for sid, _, term, trunc in cut:
        # cut by its period (truncated, bootstrapped), or ended with the episode
        assert (term, trunc) == ((True, False) if sid in last_period else (False, True))
    with pytest.raises(ValueError, match="unknown segment end 'cut'; allowed"):
        _hier(segment_end="cut")


def test_episode_end_terminates_everyone_and_reports_controller_behaviour():
    env = _hier(max_cycles=7)
    env.reset(seed=1)
    while env.agents:
        acting = env.agents
        obs, rew, term, trunc, _ = env.step({a: 1 if "/ctrl/" in a else 0 for a in acting})
    assert all(term.values())
    stats = env.episode_stats()
    assert stats["controller/choice_freq/sub1"] == 1.0
    assert "fair_efficient_reward" in stats and "utilization" in stats


def test_agent_ids_and_bad_actions():
    env = _hier()
    assert len(env.possible_agents) == 4 * 5 * 5  # agents x periods x (ctrl + 4 subs)
    assert env.action_space("agent_0/ctrl/3").n == 4
    assert env.action_space("agent_0/sub/3/1").n == 5
    with pytest.raises(ValueError, match="unknown agent id"):
        env.observation_space("agent_9/ctrl/0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="allowed: integers 0..3"):
        env.step({controller_id(a, 0): 7 for a in env.base.possible_agents})
    with pytest.raises(ValueError, match="missing"):
        env.step({controller_id("agent_0", 0): 1})


def test_gossip_average_is_used_for_rewards():
    env = _hier(average="gossip", gossip_graph="ring", gossip_rounds=200)
    env.reset(seed=0)
    while env.agents:
        env.step({a: 0 for a in env.agents})
    u = env.base.reward_sums / env.base.num_steps
    np.testing.assert_allclose(env._ubar, u.mean(), atol=1e-6)


def test_flat_variant_is_rewarded_with_rhat_every_step():
    env = FairEfficientRewardEnv(marl_envs.make("job_scheduling", max_cycles=10))
    obs, _ = env.reset(seed=0)
    assert obs["agent_0"].shape == (15,)
    for _ in range(10):
        obs, rew, *_ = env.step({a: 0 for a in env.agents})
        u = env.base.reward_sums / env.base.num_steps
        expected = fair_efficient_reward(u, u.mean(), 0.25)
        np.testing.assert_allclose([rew[a] for a in env.possible_agents], expected)
    assert env.agents == []


@pytest.mark.parametrize("shaping", ["independent", "min", "avg", "min_avg", "inequity_aversion"])
def test_baseline_shapings(shaping):
    env = ShapedRewardEnv(marl_envs.make("job_scheduling", max_cycles=50), shaping)
    env.reset(seed=0)
    r = np.array([1.0, 0.0, 0.0, 0.0])
    env.base.reward_sums[:] = [3.0, 1.0, 0.0, 0.0]
    env.base.num_steps = 4
    shaped = env.shape(r)
    u = np.array([0.75, 0.25, 0.0, 0.0])
    expected = {
        "independent": r,
        "min": np.full(4, 0.0),
        "avg": np.full(4, 0.25),
        "min_avg": np.full(4, u.min() + 0.1 * 0.25),
        # e = r after one step: agent 0 feels guilt towards 3 agents, the others envy it
        "inequity_aversion": r
        - 5.0 / 3 * np.array([0, 1, 1, 1])
        - 0.05 / 3 * np.array([3, 0, 0, 0]),
    }[shaping]
    np.testing.assert_allclose(shaped, expected)
    with pytest.raises(ValueError, match="unknown reward shaping"):
        ShapedRewardEnv(marl_envs.make("job_scheduling"), "max")


def test_feature_scale_multiplies_the_relative_utility_in_observations_only():
    plain, scaled = _hier(), _hier(feature_scale=10.0)
    for env in (plain, scaled):
        env.reset(seed=4)
        agents = env.base.possible_agents
        env.step({controller_id(a, 0): 0 for a in agents})
        for _ in range(T):  # ends the period: the next controller observes the features
            env.step({a: 2 for a in env.agents})
    obs_plain = plain.step({controller_id(a, 1): 0 for a in agents})[0]
    obs_scaled = scaled.step({controller_id(a, 1): 0 for a in agents})[0]
    sid = subpolicy_id("agent_0", 1, 0)
    np.testing.assert_allclose(obs_scaled[sid][-2], 10.0 * obs_plain[sid][-2], rtol=1e-6)
    assert obs_scaled[sid][-1] == obs_plain[sid][-1]
    assert scaled.observation_space(sid).contains(obs_scaled[sid])
    assert scaled.observation_space(sid).low[-2] == -10.0
    with pytest.raises(ValueError, match="feature_scale must be > 0"):
        _hier(feature_scale=0.0)


def test_episode_stats_split_utilization_by_the_number_of_agents_on_subpolicy_0():
    env = _hier(max_cycles=2 * T)
    env.reset(seed=0)
    agents = env.base.possible_agents
    env.step({controller_id(a, 0): 0 for a in agents})  # everyone on sub-policy 0
    for _ in range(T):  # nobody on the resource: agents stay in the corners
        env.base._positions[:] = [[1, 1], [1, 5], [5, 1], [5, 5]]
        env.base._occupied[:] = False
        env.base._occupied[env.base._positions[:, 0], env.base._positions[:, 1]] = True
        env.step({a: 0 for a in env.agents})
    env.step({controller_id(a, 1): 1 for a in agents})  # everyone on sub-policy z = 1
    env.base._positions[0] = env.base._resource  # agent_0 holds the resource
    env.base._occupied[:] = False
    env.base._occupied[env.base._positions[:, 0], env.base._positions[:, 1]] = True
    for _ in range(T):
        env.step({a: 0 for a in env.agents})
    stats = env.episode_stats()
    assert stats["controller/steps_with_4_on_sub0"] == 0.5
    assert stats["controller/steps_with_0_on_sub0"] == 0.5
    assert stats["controller/utilization_with_4_on_sub0"] == 0.0
    assert stats["controller/utilization_with_0_on_sub0"] == 1.0
    assert not any(k.startswith("controller/steps_with_2") for k in stats)


def test_masked_base_env_gives_acting_agents_the_mask_and_controllers_none():
    base = marl_envs.make("resource_allocation", max_cycles=12, action_mask=True, load=1.1)
    env = FENHierarchyEnv(base, period=T)
    obs, _ = env.reset(seed=0)
    ctrl = controller_id("agent_0", 0)
    assert env.observation_space(ctrl).contains(obs[ctrl]) and not isinstance(obs[ctrl], dict)
    obs, *_ = env.step({controller_id(a, 0): 1 for a in env.base.possible_agents})
    sub = subpolicy_id("agent_0", 0, 1)
    assert env.observation_space(sub).contains(obs[sub])
    base_mask = env.base._action_masks()[0]
    assert obs[sub]["action_mask"].tolist() == base_mask.tolist()
    np.testing.assert_array_equal(obs[sub]["observation"][:-2], env.base._observations()[0])
    flat = FairEfficientRewardEnv(
        marl_envs.make("resource_allocation", max_cycles=12, action_mask=True))
    obs, _ = flat.reset(seed=0)
    assert flat.observation_space("agent_0").contains(obs["agent_0"])


@pytest.mark.parametrize("average", ["central", "gossip"])
def test_fen_episodes_have_the_bare_envs_arrivals(average):
    """FEN's own randomness (gossip) does not draw from the base env: an episode of seed s
    is the one every scheduler sees for s, so evaluations compare the same episodes."""
    fen = FENHierarchyEnv(marl_envs.make("resource_allocation", load=1.5, max_cycles=12),
                          period=4, average=average)
    bare = marl_envs.make("resource_allocation", load=1.5, max_cycles=12)
    for seed in (3, 4):
        fen.reset(seed=seed)
        bare.reset(seed=seed)
        while bare.agents:
            if fen.agents[0].split("/")[1] == "ctrl":
                fen.step(dict.fromkeys(fen.agents, 0))
            fen.step(dict.fromkeys(fen.agents, 1))
            bare.step(dict.fromkeys(bare.agents, 1))
        assert fen.unwrapped.episode_stats() == bare.episode_stats()


def test_defaults_are_the_period_window_and_truncated_segments():
    env = _hier()
    assert (env.efficiency, env.segment_end) == ("period", "truncate")
    env.reset(seed=0)
    agents = env.base.possible_agents
    env.step({controller_id(a, 0): 0 for a in agents})
    for _ in range(T):
        _, _, term, trunc, _ = env.step({a: 0 for a in env.agents})
    # a segment cut by its period (not by the episode's end) is truncated
    assert all(trunc[subpolicy_id(a, 0, 0)] and not term[subpolicy_id(a, 0, 0)]
               for a in agents)
