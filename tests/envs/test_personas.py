"""Tests for the shipped personas and the persona loader."""

from __future__ import annotations

from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from lmrecsim.envs import catalog_build
from lmrecsim.envs.catalog import load_default_catalog
from lmrecsim.envs.personas import (
    Persona,
    PersonaError,
    load_default_personas,
    load_personas,
    persona_by_name,
)


@pytest.fixture(scope="module")
def personas() -> list[Persona]:
    return load_default_personas()


def test_shipped_personas_csv_is_byte_identical_to_generator() -> None:
    shipped = resources.files("lmrecsim.envs").joinpath("data").joinpath("personas.csv")
    assert shipped.read_bytes() == catalog_build.render_personas_csv().encode("utf-8")


def test_default_personas_shape(personas: list[Persona]) -> None:
    assert len(personas) >= 40
    names = [p.name for p in personas]
    assert len(set(names)) == len(names)
    assert all(p.text and p.onboarding and p.liked for p in personas)
    assert all(not set(p.liked) & set(p.avoided) for p in personas)


def test_every_topic_liked_by_two_personas(personas: list[Persona]) -> None:
    topics = set(load_default_catalog().topic_names)
    liked = Counter(t for p in personas for t in p.liked)
    assert set(liked) | {t for p in personas for t in p.avoided} <= topics
    assert all(liked[t] >= 2 for t in topics), {t: liked[t] for t in topics if liked[t] < 2}


def test_texts_use_catalog_vocabulary(personas: list[Persona]) -> None:
    for persona in personas:
        for topic in persona.liked:
            assert catalog_build.TOPICS[topic].label in persona.text, persona
        for topic in persona.avoided:
            assert catalog_build.TOPICS[topic].label in persona.text, persona


def test_some_onboarding_texts_are_partial(personas: list[Persona]) -> None:
    def mentioned(p: Persona) -> int:
        return sum(catalog_build.TOPICS[t].casual in p.onboarding for t in p.liked)

    multi = [p for p in personas if len(p.liked) > 1]
    assert all(mentioned(p) >= 1 for p in personas)
    partial = [p for p in multi if mentioned(p) == 1]
    assert 0 < len(partial) < len(multi)


def test_persona_by_name(personas: list[Persona]) -> None:
    assert persona_by_name(personas, "space_nerd").liked[0] == "hard_scifi"
    with pytest.raises(PersonaError) as error:
        persona_by_name(personas, "space_nerdd")
    assert "space_nerd" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(PersonaError) as error:
        persona_by_name(personas, "zzzzzz")
    assert personas[0].name in str(error.value)


def test_load_yaml_and_csv(tmp_path: Path) -> None:
    yml = tmp_path / "p.yaml"
    yml.write_text(
        "- name: reader\n  text: likes books\n  liked: [fantasy, history]\n"
        "- name: viewer\n  text: watches films\n  liked: horror|comedy\n  avoided: romance\n"
        "  onboarding: films please\n"
    )
    loaded = load_personas(yml)
    assert loaded[0] == Persona("reader", "likes books", ("fantasy", "history"), (), "")
    assert loaded[1].liked == ("horror", "comedy") and loaded[1].avoided == ("romance",)
    csv_path = tmp_path / "p.csv"
    csv_path.write_text('name,text,liked\nfan,"loves jazz, and blues",jazz\n')
    assert load_personas(csv_path) == [Persona("fan", "loves jazz, and blues", ("jazz",))]


@pytest.mark.parametrize(
    ("suffix", "content", "parts"),
    [
        (".csv", "name,liked\na,jazz\n", ["missing column 'text'"]),
        (".csv", "name,text\na,x\na,y\n", ["row 2", "duplicate"]),
        (".csv", "name,text,color\na,x,red\n", ["unknown key 'color'"]),
        (".csv", "name,text,liked,liked\na,x,jazz,rock\n", ["column 'liked' appears 2 times"]),
        (".yaml", "- name: a\n  text: ''\n", ["row 1", "'text'"]),
        (".yaml", "- name: a\n  text: x\n  liked: jazz\n  avoided: jazz\n", ["likes and avoids"]),
        (".yaml", "name: a\n", ["YAML list"]),
        (".yaml", "- name: a\n  text: [unclosed\n", ["cannot read YAML"]),
        (".yaml", "[" * 5000 + "]" * 5000, ["cannot read YAML", "nested too deeply"]),
        (".yaml", "- name: has space\n  text: x\n", ["slug"]),
        (".json", "[]", ["unsupported"]),
    ],
)
def test_bad_persona_files(tmp_path: Path, suffix: str, content: str, parts: list[str]) -> None:
    path = tmp_path / f"personas{suffix}"
    path.write_text(content)
    with pytest.raises(PersonaError) as error:
        load_personas(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    for part in parts:
        assert part in message, message


@pytest.mark.parametrize("mode", ["pooled", "text", "events"])
def test_a_persona_without_onboarding_shows_a_new_user_as_no_state(tmp_path: Path, mode) -> None:
    # In pooled mode such a user was the encoding of "" (a non-zero state, flag 0), where text
    # and events modes showed zeros with the flag set.

    from lmrecsim.envs.env import RecommendationEnv
    from lmrecsim.envs.world import build_world
    from tests.envs.test_vec_env import HashEncoder, small_scenario

    class Model(HashEncoder):
        """As a language model does: the empty text is a vector too, not zeros."""

        def encode(self, texts):
            out = super().encode(texts)
            out[[not t.strip() for t in texts], 0] = 1.0
            return out

    people = tmp_path / "people.yaml"
    people.write_text(
        "- name: quiet\n  text: likes jazz records\n  liked: [jazz]\n"
        "- name: talker\n  text: likes horror films\n  liked: [horror]\n"
        "  onboarding: scary films please\n"
    )
    sc = small_scenario(
        tmp_path, users={"personas": str(people), "new_user_fraction": 1.0}, state={"mode": mode}
    )
    world = build_world(sc, encoder=Model())
    env = RecommendationEnv(world=world)
    seen = set()
    for seed in range(12):
        obs, _ = env.reset(seed=seed)
        persona = world.personas[int(env._users.persona[0])].name
        seen.add(persona)
        flag = obs["candidate_features"][:, 4]
        if persona == "quiet":
            assert not obs["user"].any() and (flag == 1).all(), (mode, seed)
        else:
            assert obs["user"].any() and (flag == 0).all(), (mode, seed)
    assert seen == {"quiet", "talker"}
