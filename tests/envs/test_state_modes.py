"""The two state modes: ``text`` encodes rendered histories in one batched, cached call per step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lmrecsim.commands.bench import state_agreement_figures
from lmrecsim.envs.simulator import UserBatch, _normalise

from .test_vec_env import HashEncoder, small_scenario


def _text_world(tmp_path: Any) -> tuple[Any, HashEncoder]:
    from lmrecsim.envs.world import build_world

    encoder = HashEncoder(dim=40)
    world = build_world(
        small_scenario(tmp_path, state={"mode": "text"}, users={"new_user_fraction": 0.3}),
        encoder=encoder,
    )
    return world, encoder


def test_text_state_is_the_projected_encoding_of_the_history(tmp_path: Any) -> None:
    world, encoder = _text_world(tmp_path)
    users = UserBatch(world, 12)
    users.reset_users(np.arange(12), np.arange(12, dtype=np.uint64) + 5)
    rng = np.random.default_rng(0)
    for _ in range(6):
        users.step(rng.integers(0, users.k, 12))
        obs = users.observe()
        for r in range(12):
            text = users.history_text(r)
            if not text:
                np.testing.assert_array_equal(obs["user"][r], 0.0)
                continue
            ref = world.projection.project(_normalise(encoder.encode([text])))[0]
            np.testing.assert_allclose(obs["user"][r], ref, rtol=1e-5, atol=1e-5)


def test_text_mode_encodes_once_per_step_and_caches(tmp_path: Any) -> None:
    world, encoder = _text_world(tmp_path)
    users = UserBatch(world, 16)
    keys = np.arange(16, dtype=np.uint64) * 31 + 1
    actions = np.random.default_rng(1).integers(0, users.k, size=(8, 16))
    users.reset_users(np.arange(16), keys)
    calls0 = encoder.calls
    for a in actions:
        users.step(a)
    # One batched model call per step at most (for 16 users), never one per user.
    assert encoder.calls - calls0 <= len(actions)
    first_obs = users.observe()["user"].copy()
    texts_before = encoder.texts_encoded
    users.reset_users(np.arange(16), keys)
    for a in actions:
        users.step(a)
    # Replaying the same trajectories is answered from the LRU cache alone.
    assert encoder.texts_encoded == texts_before
    np.testing.assert_array_equal(users.observe()["user"], first_obs)


def _step_and_record(users: UserBatch, rng: np.random.Generator, steps: int) -> list[Any]:
    """Step ``users`` with random actions: per step the texts before and after, and the info.

    Stops after the first step that ends an episode (finished users are not reset).
    """
    out = []
    for _ in range(steps):
        before = [users.history_text(r) for r in range(users.n)]
        _, term, trunc, info = users.step(rng.integers(0, users.k, users.n))
        out.append((before, [users.history_text(r) for r in range(users.n)], info))
        if (term | trunc).any():
            break
    return out


def test_clicks_history_shows_the_last_clicked_items_and_changes_only_on_a_click(
    tmp_path: Any,
) -> None:
    from lmrecsim.envs.world import build_world

    world = build_world(
        small_scenario(tmp_path, state={"mode": "text", "history_window": 3}),
        encoder=HashEncoder(dim=40),
    )
    assert world.scenario.state.text_events == "clicks"
    titles = world.catalog.titles
    users = UserBatch(world, 24)
    users.reset_users(np.arange(24), np.arange(24, dtype=np.uint64) + 77)
    # Returning users start with their warm history: every shown event is a click.
    for r in range(24):
        items, clicked, ratings = users.history_events(r)
        n = int(users.n_consumed[r])
        assert items.size == min(n, 3) and clicked.all()
        np.testing.assert_array_equal(items, users.consumed[r, n - items.size : n])
    clicks = changed_without_click = 0
    for before, texts, info in _step_and_record(users, np.random.default_rng(3), 10):
        for r in range(24):
            after = texts[r]
            if info["clicked"][r]:
                clicks += 1
                item, rating = int(info["item_index"][r]), int(info["rating"][r])
                assert after.endswith(f"Clicked '{titles[item]}' (rated {rating}/5).")
                assert after != before[r]
            else:
                changed_without_click += after != before[r]
            assert "Skipped" not in after
            assert after.count("Clicked") <= 3
    assert clicks > 0 and changed_without_click == 0


def test_all_events_history_shows_skips_too(tmp_path: Any) -> None:
    from lmrecsim.envs.world import build_world

    world = build_world(
        small_scenario(tmp_path, state={"mode": "text", "text_events": "all"}),
        encoder=HashEncoder(dim=40),
    )
    users = UserBatch(world, 16)
    users.reset_users(np.arange(16), np.arange(16, dtype=np.uint64) + 5)
    titles = world.catalog.titles
    skips = 0
    for _, texts, info in _step_and_record(users, np.random.default_rng(4), 6):
        for r in range(16):
            if info["invalid_action"][r]:
                continue
            item = int(info["item_index"][r])
            text = texts[r]
            if info["clicked"][r]:
                assert text.endswith(
                    f"Clicked '{titles[item]}' (rated {int(info['rating'][r])}/5)."
                )
            else:
                skips += 1
                assert text.endswith(f"Skipped '{titles[item]}'.")
    assert skips > 0


def test_clicks_history_lets_the_lru_answer_steps_without_a_click(tmp_path: Any) -> None:
    world, encoder = _text_world(tmp_path)
    users = UserBatch(world, 32)
    users.reset_users(np.arange(32), np.arange(32, dtype=np.uint64) * 7 + 3)
    lru = users.text_encoder()
    rng = np.random.default_rng(5)
    for _ in range(8):
        texts0 = encoder.texts_encoded
        _, term, trunc, info = users.step(rng.integers(0, users.k, 32))
        # Only users whose text changed (a click) reach the model; the rest are LRU hits.
        assert encoder.texts_encoded - texts0 <= int(info["clicked"].sum())
        done = np.flatnonzero(term | trunc)
        users.reset_users(done, rng.integers(0, 2**62, done.size).astype(np.uint64))
    assert lru.hits > lru.misses


class BatchShapedEncoder(HashEncoder):
    """HashEncoder whose vectors move with the size of the batch they are encoded in, as a real
    model's last bits do; ``tag`` gives it an identity of its own (a world of its own)."""

    def __init__(self, tag: str) -> None:
        super().__init__(dim=40)
        self.identity += f"|{tag}"

    def encode(self, texts: Any) -> np.ndarray:
        out = super().encode(texts)
        out[:, 0] += 1e-3 * len(texts)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_a_single_envs_text_states_do_not_depend_on_what_ran_before_it(tmp_path: Any) -> None:
    # Each env keeps its own LRU of history vectors. A cache shared through the world (every env
    # of the scenario in the process) handed a single env the vectors another env had computed
    # in its batches, so its observations for a seed depended on what had run before it.
    from lmrecsim.envs.env import RecommendationEnv
    from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv
    from lmrecsim.envs.world import build_world

    sc = small_scenario(tmp_path, state={"mode": "text"})
    actions = np.arange(12) % sc.candidates.k

    def single_env_users(world: Any) -> list[np.ndarray]:
        env = RecommendationEnv(world=world)
        obs, _ = env.reset(seed=3)
        seen = [obs["user"]]
        for a in actions:
            obs, _, term, trunc, _ = env.step(int(a))
            seen.append(obs["user"])
            if term or trunc:
                break
        return seen

    alone = single_env_users(build_world(sc, encoder=BatchShapedEncoder("alone")))
    world = build_world(sc, encoder=BatchShapedEncoder("shared"))
    venv = BatchedRecommendationVecEnv(world=world, n_envs=6)
    venv.seed(3)  # sub-env 0 meets the single env's user
    venv.reset()
    for a in actions:
        venv.step(np.full(6, a))
    after = single_env_users(world)
    assert len(after) == len(alone) > 1
    for a, b in zip(alone, after, strict=True):
        np.testing.assert_array_equal(a, b)


def test_pooled_and_text_states_agree(tmp_path: Any) -> None:
    world, _ = _text_world(tmp_path)
    figures = _by_name(state_agreement_figures(world, n_users=8, n_steps=10))
    agreement = figures["pooled_vs_text_state_mean_cosine"]
    # The bag-of-words stand-in shares title words between item texts and histories.
    assert 0.2 < agreement <= 1.0
    # A bag of words is additive, so the mean of the sentences' vectors is close to the text's:
    # the events state agrees with the text state far better than the pooled state does.
    assert figures["events_vs_text_state_mean_cosine"] > max(0.9, agreement)
    assert figures["events_vs_text_candidate_rank_correlation"] > 0.9
    assert "text_state_vs_window_item_mean_cosine" in figures


def _states(seed: int, m: int = 60, k: int = 6, d: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return _normalise(rng.standard_normal((m, d))), rng.standard_normal((m, k, d))


def _by_name(figures: list[Any]) -> dict[str, float]:
    return {f.name: f.value for f in figures}


def test_agreement_figures_of_identical_and_opposite_states() -> None:
    from lmrecsim.commands.bench import agreement_figures

    text, cand = _states(0)
    valid = np.ones(cand.shape[:2], dtype=bool)
    same = _by_name(agreement_figures(text, text.copy(), text, cand, valid))
    for name in (
        "pooled_vs_text_state_mean_cosine",
        "pooled_vs_text_state_centered_mean_cosine",
        "pooled_vs_text_top1_candidate_agreement",
        "pooled_vs_text_candidate_rank_correlation",
        "text_state_vs_window_item_mean_cosine",
    ):
        assert same[name] == pytest.approx(1.0, abs=1e-6), name
    opposite = _by_name(agreement_figures(text, -text, text, cand, valid))
    assert opposite["pooled_vs_text_state_mean_cosine"] == pytest.approx(-1.0, abs=1e-6)
    assert opposite["pooled_vs_text_top1_candidate_agreement"] == 0.0
    assert opposite["pooled_vs_text_candidate_rank_correlation"] == pytest.approx(-1.0)
    assert opposite["pooled_state_vs_window_item_mean_cosine"] == pytest.approx(-1.0, abs=1e-6)


def test_agreement_centering_removes_a_shared_direction() -> None:
    from lmrecsim.commands.bench import agreement_figures

    text, cand = _states(1)
    other, _ = _states(2)
    shared = np.zeros(text.shape[1])
    shared[0] = 5.0
    # Independent states plus one common offset: similar raw, unrelated once centred.
    figs = _by_name(
        agreement_figures(text + shared, other + shared, text, cand, np.ones((60, 6), bool))
    )
    assert figs["pooled_vs_text_state_mean_cosine"] > 0.8
    # 60 independent pairs in 10 dims: |mean cosine| is a few times 1/sqrt(600) at most.
    assert abs(figs["pooled_vs_text_state_centered_mean_cosine"]) < 0.15


def test_agreement_rankings_use_valid_candidates_only() -> None:
    from lmrecsim.commands.bench import agreement_figures

    text, cand = _states(3, k=5)
    valid = np.ones((60, 5), dtype=bool)
    valid[:, 0] = False  # four valid candidates: chance 1/4
    valid[:10, 1:] = False  # no valid candidate: row left out of the rankings
    # Disagreement on the masked column only changes nothing.
    pooled_cand_score_boost = cand.copy()
    figs = _by_name(agreement_figures(text, text, text, pooled_cand_score_boost, valid))
    assert figs["pooled_vs_text_top1_candidate_agreement_chance"] == pytest.approx(0.25)
    assert figs["pooled_vs_text_top1_candidate_agreement"] == 1.0


def test_bench_text_mode_naive_side_does_no_cached_text_work(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lmrecsim.commands.bench import bench_text_mode, mode_world
    from lmrecsim.encoders import LRUEncoder

    world, encoder = _text_world(tmp_path)
    mode_world(world, "pooled")  # built (and memoised) before counting: it encodes the catalog
    calls, lrus = [], []
    texts0 = encoder.texts_encoded
    real = LRUEncoder.encode

    def counted(self: LRUEncoder, texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        lrus.append(self)
        return real(self, texts)

    monkeypatch.setattr(LRUEncoder, "encode", counted)
    figs = _by_name(bench_text_mode(world, n_users=6, n_steps=3, naive_steps=6, rounds=3))
    # The batched side: one call for the first reset, then one per step and at most one per
    # reset after it, all to the batched users' own LRU. The naive side's 6 steps never go
    # through an LRU.
    assert 1 + 3 <= len(calls) <= 1 + 2 * 3
    assert len({id(lru) for lru in lrus}) == 1
    naive_texts = (encoder.texts_encoded - texts0) - lrus[0].misses
    # One single-text encode per env per naive step (new users may have nothing to show yet).
    assert 6 * 6 * 0.5 <= naive_texts <= 2 * 6 * 6
    assert figs["text_mode_batched_cached_over_naive"] == pytest.approx(
        figs["text_mode_batched_cached_user_steps_per_s"] / figs["text_mode_naive_user_steps_per_s"]
    )


def _mode_run(
    tmp_path: Any, mode: str, nearest_to: str, encoder: HashEncoder, steps: int = 30
) -> list[Any]:
    """Single-env trajectory (seed 3, fixed actions, resets after episode ends) in one mode."""
    from lmrecsim.envs.env import RecommendationEnv
    from lmrecsim.envs.world import build_world

    sc = small_scenario(
        tmp_path,
        state={"mode": mode},
        candidates={"nearest_to": nearest_to},
        users={"new_user_fraction": 0.3},
    )
    env = RecommendationEnv(world=build_world(sc, encoder=encoder))
    obs, _ = env.reset(seed=3)
    actions = np.random.default_rng(4).integers(0, sc.candidates.k, steps)
    out = []
    for a in actions:
        nxt, reward, term, trunc, info = env.step(int(a))
        out.append((obs, reward, term, trunc, info["candidate_items"].copy()))
        obs = env.reset()[0] if term or trunc else nxt
    return out


@pytest.mark.parametrize("mode", ["text", "events"])
def test_nearest_to_pooled_makes_a_language_mode_differ_from_pooled_mode_only_in_the_user_state(
    tmp_path: Any, mode: str
) -> None:
    encoder = HashEncoder(dim=40)
    text = _mode_run(tmp_path, mode, "pooled", encoder)
    pooled = _mode_run(tmp_path, "pooled", "pooled", encoder)
    assert any(t[2] or t[3] for t in text)  # the run crosses an episode end
    for (o_t, r_t, te_t, tr_t, c_t), (o_p, r_p, te_p, tr_p, c_p) in zip(text, pooled, strict=True):
        np.testing.assert_array_equal(c_t, c_p)
        assert (r_t, te_t, tr_t) == (r_p, te_p, tr_p)
        for key in ("candidates", "candidate_features", "action_mask"):
            np.testing.assert_array_equal(o_t[key], o_p[key])
    # What the policy sees of the user is still the text encoding in text mode.
    assert any(
        not np.allclose(t[0]["user"], p[0]["user"]) for t, p in zip(text, pooled, strict=True)
    )
    # With the default (the visible state), text mode retrieves by the text state: other slates.
    visible = _mode_run(tmp_path, mode, "visible", encoder)
    assert any(not np.array_equal(v[4], p[4]) for v, p in zip(visible, pooled, strict=True))
    # In pooled mode the key changes nothing.
    same = _mode_run(tmp_path, "pooled", "visible", encoder)
    for a, b in zip(same, pooled, strict=True):
        np.testing.assert_array_equal(a[4], b[4])
        np.testing.assert_array_equal(a[0]["user"], b[0]["user"])


@pytest.mark.parametrize(
    ("text_events", "limit"), [("clicks", None), ("all", None), ("clicks", 24), ("all", 24)]
)
def test_events_state_is_the_projected_mean_of_the_encoded_sentences_of_the_history(
    tmp_path: Any, text_events: str, limit: int | None
) -> None:
    from importlib import resources

    import pandas as pd

    from lmrecsim.envs.world import build_world

    # Half the personas without a sign-up text: their new users' texts start empty.
    shipped = resources.files("lmrecsim.envs").joinpath("data").joinpath("personas.csv")
    with resources.as_file(shipped) as path:
        personas = pd.read_csv(path, keep_default_na=False)
    personas.loc[personas.index % 2 == 0, "onboarding"] = ""
    personas.to_csv(tmp_path / "personas.csv", index=False)
    # With a token limit the texts are cut to their newest sentences, and so is the events state.
    encoder = HashEncoder(dim=40) if limit is None else WordBudgetEncoder(limit, dim=40)
    sc = small_scenario(
        tmp_path,
        state={"mode": "events", "text_events": text_events},
        users={"new_user_fraction": 0.4, "personas": str(tmp_path / "personas.csv")},
    )
    world = build_world(sc, encoder=encoder)
    users = UserBatch(world, 12)
    users.reset_users(np.arange(12), np.arange(12, dtype=np.uint64) * 3 + 11)
    rng = np.random.default_rng(2)
    w_personas = world.personas
    checked = onboarding = silent = cut = 0
    for _ in range(8):
        users.step(rng.integers(0, users.k, 12))
        obs = users.observe()
        for r in range(12):
            text = users.history_text(r)
            sentences = _sentences(users, r)
            # The history text is exactly these sentences joined (one template for both modes).
            assert text == " ".join(sentences)
            if not text:
                np.testing.assert_array_equal(obs["user"][r], 0.0)
                assert obs["candidate_features"][r, 0, 4] == 1.0  # user has no state
                continue
            mean = encoder.encode(sentences).mean(axis=0, keepdims=True)
            ref = world.projection.project(_normalise(mean))[0]
            np.testing.assert_allclose(obs["user"][r], ref, rtol=1e-4, atol=1e-5)
            checked += 1
            onboarding += bool(users.show_onboarding[r])
            silent += bool(users.show_onboarding[r]) and not w_personas[users.persona[r]].onboarding
            if limit is not None:
                assert len(text.split()) <= limit or len(sentences) == 1
                cut += len(sentences) < _window_events(users, r) + _shows_signup(users, r)
    # A persona without a sign-up text never shows one: its new users start with no state
    # (tests/envs/test_personas.py checks that state in every mode).
    assert checked > 40 and onboarding > 0 and silent == 0
    assert (cut > 20) == (limit is not None)


def _sentences(users: UserBatch, row: int) -> list[str]:
    from lmrecsim.envs.simulator import click_event_text, onboarding_event_text, skip_event_text

    w = users.world
    out = []
    onboarding, items, clicked, ratings = users._history_parts(row)
    if onboarding:
        out.append(onboarding_event_text(onboarding))
    for i, c, q in zip(items.tolist(), clicked.tolist(), ratings.tolist(), strict=True):
        if i >= 0:
            title = w.catalog.titles[i]
            out.append(click_event_text(title, int(q)) if c else skip_event_text(title))
    return out


def test_events_tables_too_large_for_memory_are_one_line_naming_file_and_key(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lmrecsim.envs import world as world_mod
    from lmrecsim.envs.world import WorldError, build_world

    monkeypatch.setattr(world_mod, "EVENT_TABLE_MAX_BYTES", 1 << 16)  # 300 x 5 x 40 floats: 234 KiB
    sc = small_scenario(tmp_path, state={"mode": "events"})
    with pytest.raises(WorldError) as err:
        build_world(sc, encoder=HashEncoder(dim=40))
    message = str(err.value)
    assert "\n" not in message
    assert "state.mode" in message and "300 items" in message and "expected at most" in message


class WordBudgetEncoder(HashEncoder):
    """A :class:`HashEncoder` that embeds at most ``limit`` words: its tokens are words, so a
    text's count is the sum of its sentences' counts, as with the default model's WordPiece."""

    def __init__(self, limit: int, dim: int = 40) -> None:
        super().__init__(dim)
        self.text_token_limit = limit
        self.identity = f"test-word-budget|{limit}|{dim}"

    def token_counts(self, texts: Any) -> np.ndarray:
        return np.array([len(t.split()) for t in texts], dtype=np.int64)

    def encode(self, texts: Any) -> np.ndarray:
        return super().encode([" ".join(t.split()[: self.text_token_limit]) for t in texts])


def _window_events(users: UserBatch, row: int) -> int:
    """Events in the history window of ``row`` before any cut to a token limit."""
    st = users.sc.state
    if st.text_events == "clicks":
        return min(int(users.n_consumed[row]), st.history_window)
    return int((users.hist_item[row, -st.history_window :] >= 0).sum())


def _shows_signup(users: UserBatch, row: int) -> bool:
    return bool(users.show_onboarding[row]) and bool(
        users.world.personas[users.persona[row]].onboarding
    )


def test_fit_history_keeps_the_newest_sentences_that_fit() -> None:
    from lmrecsim.envs.simulator import fit_history

    def fit(tokens: list[int], valid: list[bool], onb: int, shown: bool, limit: int) -> Any:
        keep, keep_onb = fit_history(
            np.array([tokens]), np.array([valid]), np.array([onb]), np.array([shown]), limit
        )
        return keep[0].tolist(), bool(keep_onb[0])

    t = [True] * 3
    # Everything fits, the sign-up sentence too.
    assert fit([5, 6, 7], t, 4, True, 22) == (t, True)
    # One token short for the sign-up sentence: the events stay, the oldest sentence goes.
    assert fit([5, 6, 7], t, 4, True, 21) == (t, False)
    # 6 + 7 = 13 fit, 5 + 6 + 7 do not: the oldest event goes.
    assert fit([5, 6, 7], t, 0, False, 13) == ([False, True, True], False)
    # A sentence is kept only if it fits together with every newer one (no skipping ahead).
    assert fit([1, 9, 7], t, 0, False, 13) == ([False, False, True], False)
    # The newest sentence is always kept, even alone too long (the encoder cuts it).
    assert fit([5, 6, 30], t, 2, True, 13) == ([False, False, True], False)
    # Empty slots (nothing shown that step) count nothing and are never kept.
    assert fit([5, 99, 7], [True, False, True], 0, False, 12) == ([True, False, True], False)
    assert fit([5, 4, 99], [True, True, False], 0, False, 9) == ([True, True, False], False)
    # A sign-up sentence alone is kept whatever its length; without events or sign-up, nothing.
    assert fit([3, 3, 3], [False] * 3, 50, True, 13) == ([False] * 3, True)
    assert fit([3, 3, 3], [False] * 3, 0, False, 13) == ([False] * 3, False)
    # Rows are independent.
    keep, keep_onb = fit_history(
        np.array([[5, 6, 7], [5, 6, 7]]),
        np.ones((2, 3), dtype=bool),
        np.array([4, 4]),
        np.array([True, True]),
        np.int64(13),
    )
    assert keep.tolist() == [[False, True, True], [False, True, True]]
    assert keep_onb.tolist() == [False, False]


@pytest.mark.parametrize("text_events", ["clicks", "all"])
def test_a_history_past_the_token_limit_loses_its_oldest_events_not_its_newest(
    tmp_path: Any, text_events: str
) -> None:
    from lmrecsim.envs.world import build_world

    limit = 20
    encoder = WordBudgetEncoder(limit, dim=40)
    world = build_world(
        small_scenario(
            tmp_path,
            state={"mode": "text", "history_window": 8, "text_events": text_events},
            users={"new_user_fraction": 0.3},
        ),
        encoder=encoder,
    )
    titles = world.catalog.titles
    users = UserBatch(world, 16)
    users.reset_users(np.arange(16), np.arange(16, dtype=np.uint64) * 7 + 3)
    rng = np.random.default_rng(5)
    shortened = newest_seen = 0
    for _ in range(10):
        _, term, trunc, info = users.step(rng.integers(0, users.k, 16))
        obs = users.observe()
        for r in range(16):
            text = users.history_text(r)
            sentences = _sentences(users, r)
            assert text == " ".join(sentences)
            # The newest sentences of the whole window, as many as fit in the limit.
            full = _full_sentences(users, r)
            assert sentences == full[len(full) - len(sentences) :]
            words = sum(len(x.split()) for x in sentences)
            assert words <= limit or len(sentences) == 1
            if len(sentences) < len(full):
                shortened += 1
                assert words + len(full[len(full) - len(sentences) - 1].split()) > limit
            # The step's own event ends the text: the newest event is never the one cut.
            if not info["invalid_action"][r]:
                item = int(info["item_index"][r])
                if info["clicked"][r]:
                    rating = int(info["rating"][r])
                    assert text.endswith(f"Clicked '{titles[item]}' (rated {rating}/5).")
                    newest_seen += 1
                elif text_events == "all":
                    assert text.endswith(f"Skipped '{titles[item]}'.")
            # The state is the model's encoding of exactly this text.
            if text:
                ref = world.projection.project(_normalise(encoder.encode([text])))[0]
                np.testing.assert_allclose(obs["user"][r], ref, rtol=1e-5, atol=1e-5)
        if (term | trunc).any():
            break
    assert shortened > 50 and newest_seen > 5


def _full_sentences(users: UserBatch, row: int) -> list[str]:
    """The sentences of the whole history window of ``row``, with no token limit."""
    from lmrecsim.envs.simulator import click_event_text, onboarding_event_text, skip_event_text

    st, w = users.sc.state, users.world
    out = [onboarding_event_text(w.personas[users.persona[row]].onboarding)]
    out = out if _shows_signup(users, row) else []
    if st.text_events == "clicks":
        n = int(users.n_consumed[row])
        lo = max(n - st.history_window, 0)
        events = [
            (i, True, q)
            for i, q in zip(
                users.consumed[row, lo:n], users.consumed_rating[row, lo:n], strict=True
            )
        ]
    else:
        sl = slice(users.window - st.history_window, None)
        events = list(
            zip(
                users.hist_item[row, sl],
                users.hist_click[row, sl],
                users.hist_rating[row, sl],
                strict=True,
            )
        )
    for i, c, q in events:
        if i >= 0:
            title = w.catalog.titles[int(i)]
            out.append(click_event_text(title, int(q)) if c else skip_event_text(title))
    return out


def test_with_the_default_model_a_long_history_keeps_its_newest_clicks_within_128_tokens(
    tmp_path: Any,
) -> None:
    from lmrecsim.envs.world import build_world

    # 16 clicks take about 240 tokens; before the cut the model read the oldest 128 and never
    # saw the newest clicks.
    world = build_world(small_scenario(tmp_path, state={"mode": "text", "history_window": 16}))
    tokenizer = world.encoder.encoder.tokenizer
    titles = world.catalog.titles
    users = UserBatch(world, 6)
    users.reset_users(np.arange(6), np.arange(6, dtype=np.uint64) + 40)
    rng = np.random.default_rng(0)
    clicks = 0
    for _ in range(5):
        _, _, _, info = users.step(rng.integers(0, users.k, 6))
        for r in range(6):
            text = users.history_text(r)
            n_tokens = len(tokenizer(text)["input_ids"])
            assert n_tokens <= 128
            # Cut whole sentences: one more would not fit.
            full = _full_sentences(users, r)
            shown = len(_sentences(users, r))
            assert shown < len(full)
            older = tokenizer(full[len(full) - shown - 1], add_special_tokens=False)["input_ids"]
            assert n_tokens + len(older) > 128
            if info["clicked"][r]:
                clicks += 1
                item, rating = int(info["item_index"][r]), int(info["rating"][r])
                assert text.endswith(f"Clicked '{titles[item]}' (rated {rating}/5).")
    assert clicks > 0
