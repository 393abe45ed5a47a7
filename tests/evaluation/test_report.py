"""The HTML report escapes data and renders in headless Chromium with every image loading."""

from __future__ import annotations

import base64
import csv
import io
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lmrecsim.evaluation.runner import evaluate
from lmrecsim.scenarios import scenario_from_dict

CHROMIUM = Path("/usr/bin/chromium")
EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    catalog = root / "catalog.csv"
    topics = ["space", "cooking", "history", "music"]
    with catalog.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["item_id", "title", "description", "topics", "popularity"])
        # By far the most popular item, so `popular` recommends it and the report lists it.
        writer.writerow(["evil", EVIL, "A film about space rockets & <b>stars</b>.", "space", 50])
        for i in range(39):
            topic = topics[i % len(topics)]
            writer.writerow(
                [f"it{i:02d}", f"{topic.title()} show {i}", f"A {topic} documentary.", topic, 1]
            )
    sc = scenario_from_dict(
        {
            "extends": "default",
            "name": "escape <b>test</b>",
            "description": "Titles & descriptions with <tags>",
            "catalog": {"source": str(catalog)},
            "candidates": {"k": 10},
        }
    )
    out = root / "out"
    evaluate(
        sc,
        ["popular", "greedy", "oracle", "a<b>=random"],
        seeds=[0],
        episodes=6,
        reference="a<b>",
        out=out,
        progress=False,
        n_resamples=200,
    )
    return out


def test_data_strings_are_escaped(report_dir: Path) -> None:
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    assert EVIL not in page
    assert "<b>test</b>" not in page and "<tags>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 0
    md = (report_dir / "report.md").read_text(encoding="utf-8")
    assert EVIL not in md and "&lt;script&gt;" in md


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (Debian package 'chromium')"
)
def test_report_renders_in_headless_chromium(report_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    url = (report_dir / "report.html").resolve().as_uri()
    shot = tmp_path / "shot.png"
    done = _chromium([f"--screenshot={shot}", "--window-size=1200,2000", url], tmp_path / "p1")
    assert done.returncode == 0, done.stderr[-2000:]
    with Image.open(shot) as img:
        assert img.size == (1200, 2000)

    dom = _chromium(["--dump-dom", url], tmp_path / "p2")
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The browser parsed the evil title as text: no script element came out of it.
    assert "<script" not in dom.stdout
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', dom.stdout)
    assert len(srcs) >= 2
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as img:
            img.load()
            assert img.width > 100 and img.height > 100


def test_markdown_in_data_text_shows_as_written() -> None:
    # Titles and descriptions used to keep link and image syntax live in report.md.
    from lmrecsim.evaluation.report import md_text

    hostile = "[Watch](javascript:alert(1)) ![x](http://attacker.example/t.png) `code` *em* a|b"
    out = md_text(hostile)
    for live in ("[Watch](", "![x](", "`code`", "*em*", "a|b"):
        assert live not in out, live
    assert "\\[Watch\\](javascript" in out and "\\!\\[x\\](http" in out
    # Ordinary text, our own intervals and labels stay readable.
    assert md_text("0.50 [0.41, 0.60]") == "0.50 [0.41, 0.60]"
    assert md_text("oracle (privileged)") == "oracle (privileged)"
    assert md_text("ppo_s0 & <b>") == "ppo_s0 &amp; &lt;b&gt;"
    assert md_text("_new_ release __bold__") == "\\_new\\_ release \\_\\_bold\\_\\_"
    # Quotes are not Markdown: an entity would show as written in a plain-text reader.
    assert md_text('the catalog\'s "own" prior') == 'the catalog\'s "own" prior'


def test_plot_labels_are_drawn_as_written(tmp_path) -> None:
    # A "$" started matplotlib maths: an odd one crashed evaluate after the CSVs were written.
    from lmrecsim.evaluation import evaluate

    res = evaluate(
        "default",
        ["a$\\frac$=greedy", "cost $5 or $10=random", "_hidden=popular"],
        seeds=[1000],
        episodes=1,
        reference="cost $5 or $10",
        progress=False,
        out=tmp_path,
    )
    assert (tmp_path / "return_ctr.png").is_file() and (tmp_path / "report.html").is_file()
    assert set(res.summary["policy"]) == {"a$\\frac$", "cost $5 or $10", "_hidden"}


def test_the_report_says_when_k_covers_every_candidate(tmp_path: Path) -> None:
    # With k = 2 candidates and ranking k = 5, precision and recall at k are 1.0 for random as
    # for the oracle; the report used to give them without a word.
    sc = scenario_from_dict({"extends": "default", "name": "two", "candidates": {"k": 2}})
    res = evaluate(sc, ["random", "oracle"], seeds=[5], episodes=2, out=tmp_path, progress=False)
    text = (tmp_path / "report.md").read_text()
    assert "with 2 candidates per step that is all of them, so precision and recall at k" in text
    assert res.settings["ranking_k"] == 5
    wide = scenario_from_dict({"extends": "default", "name": "wide"})
    evaluate(wide, ["random"], seeds=[5], episodes=2, out=tmp_path / "w", progress=False)
    assert (
        "candidates per step that is all of them" not in (tmp_path / "w" / "report.md").read_text()
    )


def test_most_recommended_items_say_when_the_cut_splits_a_tie() -> None:
    # Six items tied at the fifth place: five were shown and the sixth dropped without a word.
    from types import SimpleNamespace

    from lmrecsim.evaluation.report import _top_rows

    counts = np.array([9, 5, 3, 3, 3, 3, 3, 1], dtype=float)
    catalog = SimpleNamespace(
        item_ids=[f"i{j}" for j in range(8)], titles=[f"t{j}" for j in range(8)]
    )
    result = SimpleNamespace(exposure=lambda label: counts, world=SimpleNamespace(catalog=catalog))
    rows = _top_rows(result, "p")
    assert [r[0] for r in rows[:5]] == ["i0", "i1", "i2", "i3", "i4"]
    assert rows[5] == ["", "and 2 more item(s) recommended as often", "10.0%"]
    counts[5:7] = 2  # no tie across the cut
    assert len(_top_rows(result, "p")) == 5
