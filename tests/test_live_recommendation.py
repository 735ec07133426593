"""live_recommendation: PettingZoo API, dynamics, data tools, baselines, re-ranking (the
evaluation as trials and the DQN: tests/test_experiment_recommender.py)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test

import marl_envs
from marl_envs.live_recommendation import LiveRecEnv, gini, parse_session_id
from marl_envs.live_recommendation.data import (
    export_sessions,
    fit_env_params,
    load_liverec_csv,
)
from marl_envs.live_recommendation_v0 import parallel_env
from policies.heuristics.recommenders import (
    MostPopularLive,
    Oracle,
    RandomLive,
    RepeatLive,
    live_from_obs,
    recommend,
)
from policies.recommender_evaluation import rank_of

SMALL = {"n_users": 10, "n_streamers": 12, "days": 1}
#: PettingZoo warns when sessions that never happened are not terminated at the end
_NEVER_ONLINE = "No agents present but not all possible_agents are terminated or truncated"


def _pz_warnings(record: list) -> list[str]:
    return [str(w.message) for w in record if "pettingzoo" in w.filename
            and str(w.message) != _NEVER_ONLINE]


def _first_live_agent(env: LiveRecEnv) -> tuple[str, np.ndarray]:
    env.reset(seed=0)
    return env.agents[0], env.live_mask()


def _random_live_actions(env: LiveRecEnv, rng: np.random.Generator) -> dict[str, int]:
    live = np.flatnonzero(env.live_mask())
    return {a: int(rng.choice(live)) for a in env.agents}


# ------------------------------------------------------------------ PettingZoo
@pytest.mark.parametrize("mask", [False, True])
def test_parallel_api(mask: bool) -> None:
    env = marl_envs.make("live_recommendation", action_mask=mask, **SMALL)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=1000)
    assert _pz_warnings(record) == []


def test_aec_api() -> None:
    from marl_envs.live_recommendation_v0 import env as aec_env

    api_test(aec_env(**SMALL), num_cycles=200)


def test_parallel_seed() -> None:
    parallel_seed_test(lambda: parallel_env(**SMALL), num_cycles=300)


def test_render_modes_and_bad_input() -> None:
    env = parallel_env(render_mode="ansi", **SMALL)
    env.reset(seed=0)
    env.step(dict.fromkeys(env.agents, 0))
    text = env.render()
    assert isinstance(text, str) and "step" in text and "\n" in text
    rgb = parallel_env(render_mode="rgb_array", **SMALL)
    rgb.reset(seed=0)
    img = rgb.render()
    assert img.ndim == 3 and min(img.shape[:2]) >= 64
    assert parallel_env(**SMALL).render() is None
    with pytest.raises(ValueError, match="render_mode='rgb' is not supported"):
        parallel_env(render_mode="rgb")
    with pytest.raises(TypeError, match="unknown keyword argument.*allowed"):
        parallel_env(n_user=3)
    with pytest.raises(ValueError, match=r"preset='huge' is not supported; allowed: \['default'"):
        parallel_env(preset="huge")
    env = parallel_env(**SMALL)
    env.reset(seed=0)
    agent = env.agents[0]
    with pytest.raises(ValueError, match="invalid action.*allowed: integers 0..11"):
        env.step({**dict.fromkeys(env.agents, 0), agent: 12})
    with pytest.raises(ValueError, match="missing"):
        env.step({})
    with pytest.raises(ValueError, match="unknown agent id"):
        env.observation_space("user_99/s0")


def test_sizes_presets_and_spaces() -> None:
    env = LiveRecEnv()
    assert (env.n_users, env.n_streamers, env.days) == (100, 100, 1)
    large = LiveRecEnv(preset="large", n_users=50)
    assert (large.n_users, large.n_streamers, large.days) == (50, 500, 7)
    env = LiveRecEnv(action_mask=True, **SMALL)
    obs, _ = env.reset(seed=1)
    o = obs[env.agents[0]]
    assert o["action_mask"].dtype == np.int8 and o["observation"].shape == (4 + 36 + 10,)
    assert env.observation_space(env.agents[0]).contains(o)
    assert np.array_equal(o["action_mask"] > 0, env.live_mask())


# ------------------------------------------------------------------- dynamics
def test_only_live_streamers_valid_invalid_counted_with_zero_reward() -> None:
    env = LiveRecEnv(**SMALL)
    agent, live = _first_live_agent(env)
    offline = int(np.flatnonzero(~live)[0])
    acts = {a: int(np.flatnonzero(live)[0]) for a in env.agents}
    acts[agent] = offline
    _, rewards, _, _, _ = env.step(acts)
    assert rewards[agent] == 0.0
    assert env.invalid == 1 and env.episode_stats()["invalid_rate"] == 1 / len(acts)
    assert env.exposure[offline] == 0


def test_acceptance_probability_is_the_logit_formula() -> None:
    env = LiveRecEnv(**SMALL, beta_pref=2.0, beta_quality=1.0, beta_repeat=0.5,
                     beta_audience=0.25, outside_utility=0.7)
    agent, live = _first_live_agent(env)
    u, i = parse_session_id(agent)[0], int(np.flatnonzero(live)[0])
    env.match[u, i], env.quality[i], env.counts[u, i], env.viewers[i] = 0.3, -0.2, 0.0, 3
    # env.match holds <p_u, e_i> / sqrt(n_topics)
    v = 2.0 * 0.3 + 1.0 * -0.2 + 0.5 * 0 + 0.25 * math.log(4)
    expected = math.exp(v) / (math.exp(v) + math.exp(0.7))
    assert env.choice_probability(agent, i) == pytest.approx(expected, rel=1e-12)
    # repeat bonus and audience (herding) raise the probability
    env.counts[u, i] = 2.0
    with_repeat = env.choice_probability(agent, i)
    assert with_repeat > expected
    env.viewers[i] = 30
    assert env.choice_probability(agent, i) > with_repeat
    assert env.choice_probability(agent, int(np.flatnonzero(~live)[0])) == 0.0


def test_accepted_reward_is_watch_minutes_plus_like() -> None:
    env = LiveRecEnv(**SMALL, outside_utility=-50.0, like_threshold=50.0)  # always accept
    agent, live = _first_live_agent(env)
    i = int(np.flatnonzero(live)[0])
    p = env.choice_probability(agent, i)
    _, rewards, _, _, _ = env.step(dict.fromkeys(env.agents, i))
    assert rewards[agent] == pytest.approx(10 * p)  # never liked: like_threshold is huge
    assert env.viewers[i] == len(rewards)


def test_reward_range_and_stats() -> None:
    env = LiveRecEnv(**SMALL, like_bonus=3.0)
    rng = np.random.default_rng(0)
    env.reset(seed=3)
    seen = []
    while env.agents:
        acts = {a: int(rng.integers(12)) for a in env.agents}
        _, rewards, _, _, _ = env.step(acts)
        seen += [rewards[a] for a in acts]
    assert min(seen) >= 0 and max(seen) <= 13.0 and max(seen) > 0
    stats = env.episode_stats()
    for key in ("watch_time_per_user", "acceptance_rate", "invalid_rate", "exposure_gini",
                "exposure_cv", "active_streamers", "hr1", "cv"):
        assert isinstance(stats[key], float), key
    assert 0 < stats["invalid_rate"] < 1 and stats["active_streamers"] <= 12


def test_low_exposure_streamer_leaves_after_patience() -> None:
    env = LiveRecEnv(n_users=30, n_streamers=20, patience=3, min_exposure=1)
    env.reset(seed=0)
    remaining = env.scheduled[env.slot:].sum(axis=0) * env.live_mask()
    victim = int(np.argmax(remaining))
    live_slots = 0
    while env.agents and env.active[victim]:
        live = np.flatnonzero(env.live_mask())
        others = [int(i) for i in live if i != victim]
        live_slots += int(victim in live)
        # another live streamer, else an offline one (invalid): never the victim
        target = others[0] if others else int(np.flatnonzero(~env.live_mask())[0])
        env.step(dict.fromkeys(env.agents, target))
    assert not env.active[victim] and live_slots == 3 and env.departed_at[victim] >= 0
    assert not env.live_mask()[victim]


def test_herding_audience_feeds_utility_of_everyone() -> None:
    env = LiveRecEnv(n_users=20, n_streamers=30, outside_utility=-50.0)
    env.reset(seed=0)
    while env.live_mask().sum() < 2:
        env.step(dict.fromkeys(env.agents, int(np.flatnonzero(env.live_mask())[0])))
    env.viewers[:] = 0
    live = np.flatnonzero(env.live_mask())
    i, j = int(live[0]), int(live[1])
    # the agent whose session lasts longest watches j; everybody else watches i
    stays = max(env.agents, key=lambda a: env.session_stop[parse_session_id(a)])
    before = env.true_utilities(stays)[i]
    env.step({**dict.fromkeys(env.agents, i), stays: j})
    assert stays in env.agents and env.viewers[i] == len(env.last_rewards) - 1
    gain = env.true_utilities(stays)[i] - before
    assert gain == pytest.approx(env.beta_audience * math.log1p(env.viewers[i]))


def test_fairness_bonus_only_for_under_exposed_streamers() -> None:
    env = LiveRecEnv(**SMALL, exposure_fairness=4.0, outside_utility=50.0)  # never accept
    agent, live = _first_live_agent(env)
    i = int(np.flatnonzero(live)[0])
    _, rewards, _, _, _ = env.step(dict.fromkeys(env.agents, i))
    assert rewards[agent] == pytest.approx(4.0)  # nobody exposed yet: full deficit
    assert env.episode_stats()["fairness_bonus_per_rec"] == pytest.approx(4.0)


def test_a_closing_agent_keeps_the_episode_running() -> None:
    env = LiveRecEnv(n_users=3, n_streamers=8, days=2)
    env.reset(seed=0)
    closings = 0
    while env.agents:
        acting = list(env.agents)
        closing = [a for a in acting if a == env._closing]
        recs_before = env.recommendations
        _, rewards, terms, _, infos = env.step(dict.fromkeys(acting, 0))
        # the closing agent's action is ignored: no recommendation, reward 0, then done
        assert env.recommendations - recs_before == len(acting) - len(closing)
        for a in closing:
            closings += 1
            assert rewards[a] == 0.0 and terms[a]
        if env.agents:  # some agent that acted this step is still running
            assert set(env.agents) & set(acting)
            assert all(infos[a].get("closing") for a in env.agents if a == env._closing)
    assert closings > 0


def test_organic_choice_info_and_gini() -> None:
    env = LiveRecEnv(**SMALL)
    _, infos = env.reset(seed=0)
    live = env.live_mask()
    for a in env.agents:
        c = infos[a]["organic_choice"]
        assert c == -1 or live[c]
    assert gini(np.ones(5)) == 0.0 and gini(np.array([0, 0, 0, 1.0])) == pytest.approx(0.75)


# ---------------------------------------------------------------------- data
def test_loader_reports_every_malformed_row_with_line_numbers(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("user,stream_id,streamer,start,stop\n"
                    "1,10,5,100,104\n"
                    "2,10,5\n"
                    "3,10,5,abc,104\n"
                    "4,10,5,110,110\n"
                    "5,11,6,3.5,9\n")
    with pytest.raises(ValueError) as e:
        load_liverec_csv(path)
    msg = str(e.value)
    assert "4 malformed row(s)" in msg
    assert "line 3: expected 5 columns" in msg
    assert "line 4: start='abc'" in msg
    assert "line 5: stop (110) <= start (110)" in msg
    assert "line 6: start='3.5'" in msg
    with pytest.raises(ValueError, match="no such file"):
        load_liverec_csv(tmp_path / "missing.csv")


_HEADER = "user,stream_id,streamer,start,stop\n"


def test_loader_accepts_a_utf8_byte_order_mark(tmp_path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (_HEADER + "1,10,5,100,104\n2,10,5,101,103\n").encode())
    sessions = load_liverec_csv(path)
    assert len(sessions) == 2 and sessions.user_ids == ["1", "2"]
    # a BOM before a headerless first row is not part of the user id either
    path.write_bytes(b"\xef\xbb\xbf" + b"u1,10,5,100,104\n")
    assert load_liverec_csv(path).user_ids == ["u1"]


def test_loader_reports_huge_slots_and_bad_utf8_with_file_and_line(tmp_path) -> None:
    path = tmp_path / "bad_bytes.csv"
    path.write_bytes((_HEADER + "1,10,5,100,104\n" + f"2,10,5,{10**30},{10**30 + 2}\n").encode()
                     + b"3,1\xff0,5,100,104\n" + b"4,10,5,999999999999,1000000000000\n")
    with pytest.raises(ValueError) as e:
        load_liverec_csv(path)
    msg = str(e.value)
    assert not isinstance(e.value, (OverflowError, UnicodeDecodeError))
    assert str(path) in msg and "2 malformed row(s)" in msg
    assert "line 3: start='1000000000000000000000000000000' is not an integer slot in " in msg
    assert "line 4: not UTF-8 (invalid start byte: byte b'\\xff' at column 4)" in msg
    assert "line 5" not in msg  # 10**12 is the largest slot allowed
    path.write_bytes(b"1,10,5,100,104\n2,\"" + b"x" * 200_000 + b"\",5,1,2\n")
    with pytest.raises(ValueError, match=r"bad_bytes.csv' line 2: not CSV \(field larger"):
        load_liverec_csv(path)


def test_loader_rejects_a_stream_id_under_two_streamers(tmp_path) -> None:
    path = tmp_path / "two_owners.csv"
    path.write_text(_HEADER + "1,10,5,100,104\n2,11,6,100,104\n3,10,6,101,104\n"
                    "4,10,6,102,104\n5,10,5,100,101\n")
    with pytest.raises(ValueError) as e:
        load_liverec_csv(path)
    assert ("stream_id '10' belongs to streamer '5' (line 2) and to streamer '6' "
            "(lines 4, 5): a stream has one streamer") in str(e.value)


def test_loader_drops_duplicate_rows_with_a_warning(tmp_path) -> None:
    rows = "1,10,5,100,104\n2,10,5,100,102\n"
    once, twice = tmp_path / "once.csv", tmp_path / "twice.csv"
    once.write_text(_HEADER + rows)
    twice.write_text(_HEADER + rows + "1, 10 ,5,100,104\n" + rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        single = load_liverec_csv(once)
    assert single.duplicates == 0
    with pytest.warns(UserWarning, match=r"dropped 3 duplicate row\(s\).*line 4 repeats line 2 "
                                         r"\| line 5 repeats line 2 \| line 6 repeats line 3"):
        doubled = load_liverec_csv(twice)
    assert doubled.duplicates == 3 and len(doubled) == len(single) == 2
    assert np.array_equal(fit_env_params(doubled)["affinity"], fit_env_params(single)["affinity"])
    assert fit_env_params(single)["affinity"].tolist() == [[4.0], [2.0]]


def test_export_load_fit_round_trip_recovers_schedules(tmp_path) -> None:
    kw = {"n_users": 200, "n_streamers": 15, "days": 7, "schedule_jitter": 0,
          "min_exposure": 0, "outside_utility": -50.0}
    env = LiveRecEnv(**kw)
    env.reset(seed=0)
    while env.agents:
        live = np.flatnonzero(env.live_mask())
        env.step({a: int(live[j % len(live)]) for j, a in enumerate(env.agents)})
    n = export_sessions(env, tmp_path / "sim.csv")
    sessions = load_liverec_csv(tmp_path / "sim.csv")
    assert len(sessions) == n > 0
    params = fit_env_params(sessions)
    ids = [int(s) for s in params["streamer_ids"]]
    assert np.array_equal(params["days"], env.stream_days[ids])
    # users are online 10:00 to ~22:30: the fitted span lies inside the true one, and
    # starts on time for streamers watched from their first slot
    assert np.all(params["start"] >= env.stream_start[ids])
    assert np.all(params["start"] + params["duration"] <= env.stream_end[ids])
    assert np.mean(params["start"] == env.stream_start[ids]) >= 0.8
    fitted = LiveRecEnv(fitted=params)
    assert fitted.n_streamers == len(ids) and fitted.initial_counts.sum() > 0


# ----------------------------------------------------------------- baselines
def test_baselines_on_a_hand_made_state() -> None:
    env = LiveRecEnv(n_users=20, n_streamers=40)
    env.reset(seed=0)
    while env.live_mask().sum() < 3:
        env.step(dict.fromkeys(env.agents, 0))
    agent, live = env.agents[0], env.live_mask()
    u = parse_session_id(agent)[0]
    lv = np.flatnonzero(live)
    assert len(lv) >= 3
    off = int(np.flatnonzero(~live)[0])
    env.viewers[:] = 0
    env.viewers[[lv[1], off]] = [4, 9]
    env.counts[u] = 0
    env.counts[u, [lv[2], off]] = [5, 50]
    obs = env.observe(agent)

    def pick(rec):
        return recommend(rec.scores(env, {agent: obs})[agent], live_from_obs(env, obs))

    assert pick(MostPopularLive(0)) == lv[1]
    assert pick(RepeatLive(0)) == lv[2]
    assert live[pick(RandomLive(0))]
    assert pick(Oracle(0)) == lv[np.argmax(env.true_utilities(agent)[lv])]
    assert rank_of(np.arange(40.0), live, int(lv[-1])) == 1


# ---------------------------------------------------------------- evaluation
def test_lasting_exposure_predicts_departures() -> None:
    env = parallel_env(**SMALL)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    departures = 0
    while env.agents:
        live = env.live_mask()
        lasting = env.lasting_exposure()
        assert (lasting <= env.recent_exposure()).all()
        could_leave = live & env.active & (env.live_slots + 1 >= env.patience)
        actions = {a: int(rng.integers(env.n_streamers)) for a in env.agents}
        shown = np.bincount([k for a, k in actions.items() if live[k] and a != env._closing],
                            minlength=env.n_streamers)
        before = env.active.copy()
        env.step(actions)
        left = before & ~env.active
        departures += int(left.sum())
        np.testing.assert_array_equal(left, could_leave & (lasting + shown < env.min_exposure))
    assert departures > 0


class _FavouriteStreamer:
    """Q-values that always prefer the lowest-numbered live streamer (a stand-in DQN)."""

    name = "fav"

    def scores(self, env, obs_by_agent):
        return {a: -np.arange(env.n_streamers, dtype=float) for a in obs_by_agent}


def test_viability_rerank_keeps_streamers_that_would_leave() -> None:
    from policies.recommender_evaluation import ViabilityRerank, run_episodes

    kwargs = {**SMALL, "n_users": 30, "n_streamers": 20}
    base = run_episodes(_FavouriteStreamer(), kwargs, episodes=1, seed=2)
    rerank = ViabilityRerank(_FavouriteStreamer(), beta=100.0)
    assert rerank.name == "fav_viability100"
    kept = run_episodes(rerank, kwargs, episodes=1, seed=2)
    assert kept["active_streamers"] > base["active_streamers"] + 3  # 18 vs 13 of 20
    for bad in (0, float("inf")):
        with pytest.raises(ValueError, match=f"beta must be a finite number > 0, got {bad}"):
            ViabilityRerank(_FavouriteStreamer(), beta=bad)
