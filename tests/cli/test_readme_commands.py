"""The README's command examples, run as written (with small budgets), so the README never lies."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from lmrecsim.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _blocks(path: Path) -> list[list[str]]:
    """The ``lmrecsim ...`` commands of each bash block of a Markdown file (continuations joined,
    comments dropped)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S):
        text = block.replace("\\\n", " ")
        cmds = []
        for line in text.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("lmrecsim "):
                cmds.append(line)
        out.append(cmds)
    return out


def _usage_commands() -> list[str]:
    """The README's "Using it" block, less notation lines (``list | show NAME``) and --help."""
    blocks = [b for b in _blocks(ROOT / "README.md") if any("lmrecsim train" in c for c in b)]
    assert len(blocks) == 1
    return [c for c in blocks[0] if " | " not in c and "--help" not in c]


@pytest.mark.parametrize(
    "doc", ["README.md", "docs/evaluation.md", "docs/logs.md", "docs/scenarios.md"]
)
def test_documented_commands_parse(doc: str) -> None:
    parser = build_parser()
    commands = [c for b in _blocks(ROOT / doc) for c in b if " | " not in c]
    for cmd in commands:
        argv = [a for a in shlex.split(cmd)[1:] if not a.endswith("...")]
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # argparse's way of refusing
            assert exc.code == 0, f"{doc}: {cmd!r} does not parse"


def _inline_examples(path: Path) -> list[str]:
    """Inline ``lmrecsim ...`` examples with options (not notation like ``LOG`` or ``[...]``)."""
    spans = re.findall(r"`(lmrecsim [^`]*)`", path.read_text(encoding="utf-8"))
    notation = ("[", "...", "COMMAND", " LOG", " DIR", " SPEC")
    return [c for c in spans if " --" in c and not any(n in c for n in notation)]


@pytest.mark.parametrize("doc", ["README.md", "docs/evaluation.md", "docs/logs.md"])
def test_inline_examples_parse(doc: str) -> None:
    parser = build_parser()
    for cmd in _inline_examples(ROOT / doc):
        try:
            parser.parse_args(shlex.split(cmd)[1:])
        except SystemExit as exc:
            assert exc.code == 0, f"{doc}: {cmd!r} does not parse"


def _small(cmd: str) -> list[str]:
    argv = shlex.split(cmd)[1:]
    if argv[0] == "train" and "--resume" in argv:  # further than the small run before it
        argv[argv.index("--timesteps") + 1] = "1024"
        return [*argv, "--no-progress"]
    if argv[0] == "train":
        if "--timesteps" in argv:
            argv[argv.index("--timesteps") + 1] = "256"
        else:
            argv += ["--timesteps", "256"]
        argv += ["--n-envs", "2", "--no-progress"]
    if argv[0] == "evaluate":
        if "--episodes" in argv:
            argv[argv.index("--episodes") + 1] = "2"
        else:
            argv += ["--episodes", "2"]
        argv += ["--no-progress"]
    return argv


@pytest.mark.slow
def test_the_readme_usage_block_runs_in_order(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    commands = [c for c in _usage_commands() if not c.startswith("lmrecsim bench")]
    assert [c.split()[1] for c in commands] == [
        "train",
        "train",
        "runs",
        "train",
        "evaluate",
        "replay",
        "replay",
        "ope",
    ]
    for cmd in commands:
        assert main(_small(cmd)) == 0, cmd
    record = json.loads((tmp_path / "runs/ppo/train.json").read_text())
    assert record["resumed_from"] >= 256 and record["timesteps"] >= 1024
    # The exact replay reproduced the evaluation log; the side-by-side run and OPE wrote files.
    assert '"reproduced": true' in (tmp_path / "replays/check/replay.json").read_text()
    assert (tmp_path / "replays/vs/replay.json").is_file()
    assert (tmp_path / "ope/ope.csv").is_file()


@pytest.mark.slow
def test_the_readme_option_examples_run_in_order(tmp_path, monkeypatch) -> None:
    # The option table's train -> evaluate -> replay examples share runs/a and reports/a.
    monkeypatch.chdir(tmp_path)
    examples = {shlex.split(c)[1]: c for c in _inline_examples(ROOT / "README.md")}
    for name in ("train", "evaluate", "replay"):
        assert main(_small(examples[name])) == 0, examples[name]
    assert (tmp_path / "replays/b/replay.json").is_file()


def test_scenario_examples_in_the_docs_are_valid_scenarios(tmp_path) -> None:
    from lmrecsim.scenarios import load_scenario

    text = (ROOT / "docs/scenarios.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 6
    n_persona_files = 0
    for i, block in enumerate(blocks):
        path = tmp_path / f"example_{i}.yaml"
        if block.lstrip("\n").startswith("# my_personas.yaml"):
            # A persona file: it loads, and its topics are the catalog's.
            from lmrecsim.envs.catalog import load_default_catalog
            from lmrecsim.envs.personas import load_personas

            path.write_text(block)
            personas = load_personas(path)
            topics = set(load_default_catalog().topic_names)
            assert personas and all(set(p.liked) | set(p.avoided) <= topics for p in personas)
            n_persona_files += 1
            continue
        path.write_text(block if "name:" in block else f"name: example_{i}\n{block}")
        load_scenario(path)  # a ScenarioError names the file, key and what was expected
    assert n_persona_files == 1


def test_the_own_policy_example_of_the_evaluation_docs_runs(capsys) -> None:
    text = (ROOT / "docs/evaluation.md").read_text(encoding="utf-8")
    example = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "class " in b)
    namespace: dict = {}
    exec(compile(example, "docs/evaluation.md", "exec"), namespace)  # noqa: S102 - our own docs
    res = namespace["res"]
    table = res.summary.set_index("policy")
    # Recommending what the user is least like earns far fewer clicks than greedy.
    assert table.at["least_similar", "ctr"] < table.at["greedy", "ctr"]
    steps = res.steps[res.steps["policy"] == "least_similar"]
    assert not steps["invalid_action"].any() and (steps["propensity"] == 1.0).all()
    assert "least_similar" in capsys.readouterr().out


def test_the_own_reward_example_of_the_scenario_docs_trains(tmp_path, monkeypatch) -> None:
    text = (ROOT / "docs/scenarios.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    small = example.replace("timesteps=20_000", "timesteps=256, n_envs=2, progress=False")
    assert small != example
    monkeypatch.chdir(tmp_path)
    exec(compile(small, "docs/scenarios.md", "exec"), {})  # noqa: S102 - our own docs
    assert (tmp_path / "runs/long/model.zip").is_file()
    assert "long_clicks" in (tmp_path / "runs/long/scenario.yaml").read_text()


def test_the_evaluate_policy_example_of_the_evaluation_docs_runs(capsys) -> None:
    text = (ROOT / "docs/evaluation.md").read_text(encoding="utf-8")
    example = next(
        b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "evaluate_policy(" in b
    )
    small = example.replace("n_eval_episodes=32", "n_eval_episodes=8")
    assert small != example
    exec(compile(small, "docs/evaluation.md", "exec"), {})  # noqa: S102 - our own docs
    lines = dict(line.split(" ", 1) for line in capsys.readouterr().out.strip().splitlines())
    means = {name: float(value.split(" +- ")[0]) for name, value in lines.items()}
    assert set(means) == {"greedy", "oracle"} and means["oracle"] > means["greedy"]
