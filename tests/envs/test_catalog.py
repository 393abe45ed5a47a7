"""Tests for the default catalog, its generator and the catalog loader."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lmrecsim.envs import catalog_build
from lmrecsim.envs.catalog import (
    Catalog,
    CatalogError,
    catalog_from_frame,
    load_catalog,
    load_default_catalog,
)


@pytest.fixture(scope="module")
def default() -> Catalog:
    return load_default_catalog()


def _user_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ["a1", "a2", "a3"],
            "title": ['Rock & Roll "Live", Vol. 1', "NA", "Plain"],
            "description": ["Loud music.", "", "Quiet music."],
            "topics": ["music|live", "music", "talk"],
            "quality": [0.5, -0.25, 0.0],
            "appeal": [0.1, 1.5, 0.0],
            "popularity": [2.0, 1.0, 1.0],
        }
    )


# --- shipped data and generator ---------------------------------------------------------------


def test_shipped_catalog_csv_is_byte_identical_to_generator() -> None:
    shipped = resources.files("lmrecsim.envs").joinpath("data").joinpath("catalog.csv")
    assert shipped.read_bytes() == catalog_build.render_catalog_csv().encode("utf-8")


def test_generator_is_deterministic_and_seed_dependent() -> None:
    assert catalog_build.render_catalog_csv(
        seed=7, n_items=950
    ) == catalog_build.render_catalog_csv(seed=7, n_items=950)
    assert catalog_build.render_catalog_csv(
        seed=7, n_items=950
    ) != catalog_build.render_catalog_csv(seed=8, n_items=950)


def test_cli_writes_identical_files(tmp_path: Path) -> None:
    out, personas_out = tmp_path / "c.csv", tmp_path / "p.csv"
    assert catalog_build.main(["--out", str(out), "--personas-out", str(personas_out)]) == 0
    assert out.read_bytes() == catalog_build.render_catalog_csv().encode("utf-8")
    assert personas_out.read_bytes() == catalog_build.render_personas_csv().encode("utf-8")


def test_default_catalog_size_and_topics(default: Catalog) -> None:
    assert len(default) >= 1200
    assert len(default.topic_names) >= 18
    assert list(default.topic_names) == sorted(default.topic_names)
    per_topic = np.bincount(default.primary_topic, minlength=len(default.topic_names))
    assert per_topic.min() >= 30
    assert default.topic_matrix.shape == (len(default), len(default.topic_names))
    assert default.topic_matrix.dtype == np.float32
    # every item carries its primary topic, and 1-2 topics in all
    assert np.all(default.topic_matrix[np.arange(len(default)), default.primary_topic] == 1.0)
    counts = default.topic_matrix.sum(axis=1)
    assert set(np.unique(counts)) <= {1.0, 2.0}
    share_two = float(np.mean(counts == 2))
    assert 0.14 < share_two < 0.26  # ~20% with a secondary topic


def test_default_catalog_ids_titles_unique(default: Catalog) -> None:
    assert len(set(default.item_ids)) == len(default)
    assert all(re.fullmatch(r"i\d{5}", i) for i in default.item_ids)
    assert len({t.casefold() for t in default.titles}) == len(default)
    assert all(d.strip() for d in default.descriptions)


def test_default_descriptions_name_their_topic_label(default: Catalog) -> None:
    # The encoder can only tie items to topics if the descriptions use the topic's words.
    hits = 0
    for topics, description in zip(default.topics, default.descriptions, strict=True):
        vocab = catalog_build.TOPICS.get(topics[0])
        if vocab is None:
            continue
        words = [vocab.label, *vocab.details]
        hits += any(w.lower() in description.lower() for w in words)
    assert hits / len(default) > 0.95


def test_default_popularity_is_normalised_and_skewed(default: Catalog) -> None:
    assert default.popularity.dtype == np.float64
    assert default.popularity.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(default.popularity > 0)
    top = np.sort(default.popularity)[::-1][: len(default) // 10]
    assert top.sum() > 0.35


def test_default_clickbait_items(default: Catalog) -> None:
    assert np.all((default.quality >= -1) & (default.quality <= 1))
    assert np.all((default.appeal >= 0) & (default.appeal <= 2))
    clickbait = default.appeal >= 1.0
    share = clickbait.mean()
    assert 0.05 < share < 0.11
    assert np.median(default.appeal[~clickbait]) < 0.3
    # means differ by ~0.45 with sd ~0.35 and ~100 click-bait items: a wide margin
    assert default.quality[clickbait].mean() < default.quality[~clickbait].mean() - 0.2
    titles = [t for t, c in zip(default.titles, clickbait, strict=True) if c]
    hooks = (
        "Won't Believe",
        "Nobody",
        "Shocking",
        "Obsessed",
        "Blow Your Mind",
        "Stop Everything",
        "Speechless",
    )
    assert all(any(h in t for h in hooks) for t in titles)


def test_default_catalog_has_titles_needing_escapes(default: Catalog) -> None:
    titles = set(default.titles)
    assert "Rock & Roll Kitchen" in titles
    assert "Don't Look Up, Again" in titles
    assert any('"' in t for t in titles)
    assert any("<" in t for t in titles)


# --- Catalog behaviour ------------------------------------------------------------------------


def test_arrays_are_read_only(default: Catalog) -> None:
    with pytest.raises(ValueError):
        default.quality[0] = 1.0


def test_texts_join_title_and_description() -> None:
    frame = _user_frame()
    frame.loc[2, "title"] = "Really?"
    cat = catalog_from_frame(frame, source="test")
    assert cat.texts() == ['Rock & Roll "Live", Vol. 1. Loud music.', "NA", "Really? Quiet music."]


def test_subset_keeps_topic_columns_and_renormalises(default: Catalog) -> None:
    index = np.array([5, 0, 17])
    sub = default.subset(index)
    assert len(sub) == 3
    assert list(sub.item_ids) == [default.item_ids[i] for i in index]
    assert sub.titles == [default.titles[i] for i in index]
    assert sub.topic_names == default.topic_names
    np.testing.assert_array_equal(sub.topic_matrix, default.topic_matrix[index])
    np.testing.assert_array_equal(sub.quality, default.quality[index])
    assert sub.popularity.sum() == pytest.approx(1.0)
    ratio = default.popularity[index] / sub.popularity
    np.testing.assert_allclose(ratio, ratio[0])
    mask = np.zeros(len(default), dtype=bool)
    mask[index] = True
    assert set(default.subset(mask).item_ids) == set(sub.item_ids)
    with pytest.raises(ValueError):
        default.subset(np.array([1, 1]))
    with pytest.raises(ValueError):
        default.subset(np.array([], dtype=np.int64))


def test_content_hash_is_stable_and_sensitive(default: Catalog, tmp_path: Path) -> None:
    assert default.content_hash() == load_default_catalog().content_hash()
    assert re.fullmatch(r"[0-9a-f]{64}", default.content_hash())
    frame = default.to_frame()
    path = tmp_path / "copy.csv"
    frame.to_csv(path, index=False)
    assert load_catalog(path).content_hash() == default.content_hash()
    frame.loc[3, "title"] = frame.loc[3, "title"] + " II"
    frame.to_csv(path, index=False)
    assert load_catalog(path).content_hash() != default.content_hash()
    assert default.subset(np.arange(10)).content_hash() != default.content_hash()


# --- loading user files -----------------------------------------------------------------------


def test_load_user_csv(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    _user_frame().to_csv(path, index=False)
    cat = load_catalog(path)
    assert cat.source == str(path)
    assert list(cat.item_ids) == ["a1", "a2", "a3"]
    assert cat.titles[0] == 'Rock & Roll "Live", Vol. 1'
    assert cat.titles[1] == "NA"  # not turned into a missing value
    assert cat.topics == [("music", "live"), ("music",), ("talk",)]
    assert cat.topic_names == ("live", "music", "talk")
    np.testing.assert_array_equal(cat.primary_topic, [1, 1, 2])
    np.testing.assert_array_equal(cat.topic_matrix, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(cat.popularity, [0.5, 0.25, 0.25])
    np.testing.assert_allclose(cat.quality, [0.5, -0.25, 0.0])
    assert cat.quality.dtype == np.float32 and cat.appeal.dtype == np.float32


def test_load_csv_optional_columns_default(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    _user_frame()[["item_id", "title", "description", "topics"]].to_csv(path, index=False)
    cat = load_catalog(path)
    np.testing.assert_array_equal(cat.quality, 0.0)
    np.testing.assert_array_equal(cat.appeal, 0.0)
    np.testing.assert_allclose(cat.popularity, 1 / 3)


def test_load_parquet_with_list_topics(tmp_path: Path) -> None:
    frame = _user_frame()
    frame["topics"] = [["music", "live"], ["music"], ["talk"]]
    frame["item_id"] = [10, 11, 12]
    path = tmp_path / "items.parquet"
    frame.to_parquet(path)
    cat = load_catalog(path)
    assert list(cat.item_ids) == ["10", "11", "12"]
    assert cat.topics == [("music", "live"), ("music",), ("talk",)]
    np.testing.assert_allclose(cat.popularity, [0.5, 0.25, 0.25])


def _assert_one_line(error: pytest.ExceptionInfo[CatalogError], *parts: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message


@pytest.mark.parametrize(
    ("edit", "column", "extra"),
    [
        (lambda f: f.drop(columns="title"), "'title'", "expected columns item_id, title"),
        (lambda f: f.assign(item_id=["a1", "a2", "a1"]), "'item_id'", "row 3"),
        (lambda f: f.assign(quality=["0.5", "good", "0"]), "'quality'", "row 2"),
        (lambda f: f.assign(title=["x", "  ", "z"]), "'title'", "row 2"),
        (lambda f: f.assign(popularity=[1.0, -1.0, 1.0]), "'popularity'", "row 2"),
        (lambda f: f.assign(popularity=["1", "nan", "1"]), "'popularity'", "row 2"),
        (lambda f: f.assign(topics=["a", "", "b"]), "'topics'", "row 2"),
    ],
)
def test_bad_csv_raises_one_line_error(tmp_path: Path, edit, column: str, extra: str) -> None:
    path = tmp_path / "bad.csv"
    edit(_user_frame()).to_csv(path, index=False)
    with pytest.raises(CatalogError) as error:
        load_catalog(path)
    _assert_one_line(error, str(path), column, extra)


def test_corrupt_parquet_raises(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    good = tmp_path / "good.parquet"
    _user_frame().to_parquet(good)
    path.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(CatalogError) as error:
        load_catalog(path)
    _assert_one_line(error, str(path), "cannot read")
    path.write_bytes(b"PAR1 this is not parquet PAR1")
    with pytest.raises(CatalogError) as error:
        load_catalog(path)
    _assert_one_line(error, str(path), "cannot read")


def test_missing_file_and_bad_suffix(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as error:
        load_catalog(tmp_path / "nope.csv")
    _assert_one_line(error, "nope.csv", "not found")
    other = tmp_path / "items.json"
    other.write_text("[]")
    with pytest.raises(CatalogError) as error:
        load_catalog(other)
    _assert_one_line(error, "items.json", ".csv or .parquet")


def test_binary_csv_raises(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00\x01garbage\x00\x80\x81")
    with pytest.raises(CatalogError) as error:
        load_catalog(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize(
    ("edit", "column", "extra"),
    [
        # A sum that overflows used to end in a bare ValueError from Catalog.
        (lambda f: f.assign(popularity=[1e308, 1e308, 1.0]), "'popularity'", "sum to inf"),
        # Beyond float32 (how quality and appeal are stored): used to become inf silently.
        (lambda f: f.assign(quality=[1e308, 0.0, 0.0]), "'quality'", "row 1"),
        (lambda f: f.assign(appeal=[0.0, 1e39, 0.0]), "'appeal'", "row 2"),
        # Types that str() or to_numeric would turn into garbage.
        (lambda f: f.assign(title=[b"raw", b"b", b"c"]), "'title'", "a bytes value"),
        (lambda f: f.assign(title=[["a", "b"], ["c"], ["d"]]), "'title'", "expected text"),
        (lambda f: f.assign(topics=[{"a": 1}, {"a": 2}, {"a": 3}]), "'topics'", "a dict value"),
        (
            lambda f: f.assign(popularity=pd.to_datetime(["2020-01-01"] * 3)),
            "'popularity'",
            "expected numbers",
        ),
    ],
)
def test_bad_parquet_cells_are_one_line(tmp_path: Path, edit, column: str, extra: str) -> None:
    path = tmp_path / "bad.parquet"
    edit(_user_frame()).to_parquet(path)
    with pytest.raises(CatalogError) as error:
        load_catalog(path)
    _assert_one_line(error, str(path), column, extra)


def test_error_messages_show_the_value_not_numpys_repr(tmp_path: Path) -> None:
    path = tmp_path / "neg.csv"
    _user_frame().assign(popularity=[1.0, -0.5, 1.0]).to_csv(path, index=False)
    with pytest.raises(CatalogError) as error:
        load_catalog(path)
    _assert_one_line(error, "-0.5 is negative")
    assert "np.float64" not in str(error.value)


def test_missing_cells_of_nullable_string_columns_are_empty(tmp_path: Path) -> None:
    # pd.NA used to become the text "<NA>" (a description, or a title that passed as non-empty).
    frame = _user_frame().astype({"description": "string", "title": "string"})
    frame.loc[1, "description"] = pd.NA
    cat = catalog_from_frame(frame)
    assert cat.descriptions[1] == ""
    frame.loc[2, "title"] = pd.NA
    with pytest.raises(CatalogError, match="column 'title' row 3 .*empty title"):
        catalog_from_frame(frame)


def test_a_column_given_twice_is_refused(tmp_path: Path) -> None:
    # pandas renamed the second copy 'quality.1', which passed as an ignored extra column while
    # the first copy was used.
    path = tmp_path / "twice.csv"
    text = _user_frame().to_csv(index=False)
    header, rest = text.split("\n", 1)
    path.write_text(header + ",quality\n" + "".join(f"{row},x\n" for row in rest.splitlines()))
    with pytest.raises(CatalogError) as error:
        load_catalog(path)
    assert str(error.value) == (
        f"{path}: column 'quality' appears 2 times (expected each column once)"
    )
    bom = tmp_path / "bom.csv"
    bom.write_text("\ufeff" + text, encoding="utf-8")
    assert len(load_catalog(bom).item_ids) == 3
