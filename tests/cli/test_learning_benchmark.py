"""The learning benchmark: the same results whether its runs go one at a time or at once, --resume,
and its refusals before any training."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _tiny(path: Path, name: str, skip_cost: float) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "extends": "default",
                "name": name,
                "catalog": {"n_items": 200},
                "candidates": {"k": 10},
                "episode": {"horizon": 20},
                "users": {"patience": {"skip_cost": skip_cost}},
                "encoder": {"project_dim": 16},
                "agent": {
                    "n_envs": 4,
                    "hyperparameters": {
                        "ppo": {"n_steps": 16, "batch_size": 32, "n_epochs": 1},
                        "dqn": {"learning_starts": 32, "buffer_size": 1000},
                    },
                },
            }
        )
    )
    return path


# Not marked slow (20 s): the process pool's scheduling is what users run with --jobs 2.
def test_jobs_give_the_results_of_one_process(tmp_path: Path) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.learning import main

    scenarios = [
        str(_tiny(tmp_path / "a.yaml", "tiny_a", 0.03)),
        str(_tiny(tmp_path / "b.yaml", "tiny_b", 0.1)),
    ]
    common = ["--scenarios", *scenarios, "--timesteps", "256", "--seeds", "0"]
    common += ["--eval-seeds", "900", "--episodes", "3", "--no-mlp"]
    outputs = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        results = tmp_path / f"RESULTS{jobs}.md"
        assert (
            main([*common, "--jobs", str(jobs), "--out", str(out), "--results", str(results)]) == 0
        )
        outputs[jobs] = json.loads((out / "learning.json").read_text())
        text = results.read_text()
        assert "### tiny_a" in text and "### tiny_b" in text
        figure = tmp_path / f"RESULTS{jobs}_gap.png"
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({figure.name})" in text
    assert list(outputs[2]) == ["tiny_a", "tiny_b"]  # scenario order, not completion order
    for name in ("tiny_a", "tiny_b"):
        assert outputs[2][name]["returns"] == outputs[1][name]["returns"]
        labels = [run["label"] for run in outputs[2][name]["runs"]]
        assert labels == [run["label"] for run in outputs[1][name]["runs"]] == ["ppo_s0", "dqn_s0"]
        assert {"ppo_s0", "dqn_s0", "random", "oracle"} <= set(outputs[1][name]["returns"])
        assert outputs[2][name]["session_lengths"] == outputs[1][name]["session_lengths"]
    # The two scenarios differ, so equal results above are not one scenario run twice.
    assert outputs[1]["tiny_a"]["returns"] != outputs[1]["tiny_b"]["returns"]


class _InOrderPool:
    """A stand-in for the process pool: each task runs when submitted, and ``wait`` reports the
    earliest submitted one done, so the order of submissions is the whole schedule."""

    submitted: list[tuple[str, str]] = []

    def __init__(self, **kwargs: object) -> None:
        type(self).submitted = []

    def submit(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        from concurrent.futures import Future

        kind = "evaluate" if fn.__name__ == "evaluate_runs" else f"train {args[1]}"
        self.submitted.append((Path(args[0]).stem, kind))  # the scenario file a.yaml or b.yaml
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        future.order = len(self.submitted)  # type: ignore[attr-defined]
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def _earliest(pending, return_when=None):  # type: ignore[no-untyped-def]
    first = min(pending, key=lambda f: f.order)
    return {first}, set(pending) - {first}


def test_a_scenario_is_evaluated_before_the_runs_still_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # All runs used to be queued up front, so every evaluation (and every results write) waited
    # behind the last training run, and a stopped benchmark had written no results.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import benchmarks.learning as learning

    monkeypatch.setattr(learning, "ProcessPoolExecutor", _InOrderPool)
    monkeypatch.setattr(learning, "wait", _earliest)
    scenarios = [
        str(_tiny(tmp_path / "a.yaml", "tiny_a", 0.03)),
        str(_tiny(tmp_path / "b.yaml", "tiny_b", 0.1)),
    ]
    argv = ["--scenarios", *scenarios, "--timesteps", "128", "--seeds", "0", "--eval-seeds"]
    argv += ["900", "--episodes", "2", "--no-mlp", "--jobs", "2", "--out", str(tmp_path / "o")]
    assert learning.main([*argv, "--results", str(tmp_path / "R.md")]) == 0
    assert _InOrderPool.submitted == [
        ("a", "train ppo"),
        ("a", "train dqn"),
        ("b", "train ppo"),  # a process is free, tiny_a still has a run going
        ("a", "evaluate"),  # tiny_a's runs are done: it goes before tiny_b's second run
        ("b", "train dqn"),
        ("b", "evaluate"),
    ]


@pytest.mark.parametrize("flag", ["--jobs", "--timesteps", "--episodes", "--threads"])
def test_counts_must_be_positive(capsys: pytest.CaptureFixture[str], flag: str) -> None:
    # --timesteps 0 and --episodes 0 used to mean the full defaults (a multi-hour run).
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.learning import main

    with pytest.raises(SystemExit) as exc:
        main([flag, "0"])
    assert exc.value.code == 2
    assert f"argument {flag}: 0 (expected an integer >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--seeds", "--eval-seeds", "--episodes", "--timesteps"])
def test_integers_in_other_digits_are_refused(
    capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    # int() reads Arabic-Indic digits: --seeds \u0661\u0662 used to train seed 12.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.learning import parse_args  # main would train, should it be read as 12

    with pytest.raises(SystemExit) as exc:
        parse_args([flag, "\u0661\u0662"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(
        f"benchmarks/learning.py: error: argument {flag}: '\u0661\u0662' (expected"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "0", "0"], "--seeds: 0 is given twice"),
        (["--algos", "ppo", "dqn", "ppo"], "--algos: ppo is given twice"),
        (["--eval-seeds", "1000", "7", "1000"], "--eval-seeds: 1000 is given twice"),
        (["--scenarios", "default", "default"], "--scenarios: default is given twice"),
    ],
)
def test_a_value_given_twice_is_refused_before_training(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    # Every run trained (twice, into one folder at once with --jobs 2), and only then the
    # evaluation refused the repeated label or seed, naming --policy or --seeds: nothing written.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.learning import parse_args

    with pytest.raises(SystemExit) as exc:
        parse_args(args)
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"benchmarks/learning.py: error: {message} (expected distinct values)"
    )


def test_a_results_file_that_is_not_utf8_or_an_overlap_is_one_line_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The results file was read after every run had trained (a UnicodeDecodeError traceback,
    # with a new gap figure beside the old file); the seed checks exited with code 1 and no
    # "error:"; a refused run left the folders it had created.
    import subprocess

    bad = tmp_path / "bad.md"
    bad.write_bytes(b"# Results\n\xff\xfe\n")
    base = [sys.executable, "-m", "benchmarks.learning", "--scenarios", "default", "--seeds", "0"]
    cases = [
        (
            ["--results", str(bad), "--out", str(tmp_path / "o")],
            f"benchmarks/learning.py: error: --results: '{bad}' cannot be read (invalid start byte",
        ),
        (
            ["--eval-seeds", "3", "--results", str(tmp_path / "new" / "R.md"), "--out", str(bad)],
            "benchmarks/learning.py: error: --seeds [0] (with n_envs=8) reuse evaluation seed(s) [3]",
        ),
        (
            ["--results", str(tmp_path / "new" / "R.md"), "--out", str(bad)],
            f"benchmarks/learning.py: error: --out: '{bad}' is a file",
        ),
    ]
    for args, message in cases:
        done = subprocess.run(
            [*base, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().startswith(message), done.stderr
        assert done.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.md"]


def test_episodes_above_the_bound_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.learning import parse_args  # main would train first

    with pytest.raises(SystemExit) as exc:
        parse_args(["--episodes", "1000001"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "benchmarks/learning.py: error: argument --episodes: 1000001 "
        "(expected an integer >= 1 and <= 1000000)"
    )


def test_an_unwritable_results_file_is_refused_before_training(tmp_path: Path) -> None:
    # It used to be found out after every scenario had trained and been evaluated.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.learning import main
    from lmrecsim.errors import UsageError

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = tmp_path / "out"
    with pytest.raises(UsageError, match="--results: .* cannot be created"):
        main(["--quick", "--results", str(blocker / "R.md"), "--out", str(out)])
    assert not out.exists()


def test_a_slate_scenario_with_maskable_ppo_is_refused_before_any_training(tmp_path: Path) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.learning import main
    from lmrecsim.errors import UsageError

    slate = ROOT / "benchmarks" / "scenarios" / "slate.yaml"
    out = tmp_path / "out"
    argv = ["--scenarios", "default", str(slate), "--results", str(tmp_path / "R.md")]
    argv += ["--algos", "ppo", "maskable_ppo"]
    with pytest.raises(
        UsageError, match="--algos maskable_ppo cannot train .*slate.yaml .*pass --algos ppo dqn"
    ):
        main([*argv, "--out", str(out)])
    assert not out.exists() and not (tmp_path / "R.md").exists()


def test_resume_reuses_complete_runs_and_trains_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import benchmarks.learning as learning

    sc = str(_tiny(tmp_path / "a.yaml", "tiny_a", 0.03))
    common = ["--scenarios", sc, "--algos", "ppo", "--timesteps", "128", "--seeds", "0", "10"]
    common += ["--eval-seeds", "900", "--episodes", "2", "--out", str(tmp_path / "out")]
    assert learning.main([*common, "--results", str(tmp_path / "R1.md")]) == 0
    first = json.loads((tmp_path / "out" / "learning.json").read_text())
    # A stop after the first seed: its run is complete, the second seed's is not.
    record = tmp_path / "out" / "tiny_a" / "ppo_s10" / "train.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "status": "stopped"}))
    trained: list[int] = []
    real_train = learning.train

    def counting_train(*args: object, **kwargs: object) -> object:
        trained.append(args[0].agent.seed)  # type: ignore[attr-defined]  # the resolved scenario
        return real_train(*args, **kwargs)

    monkeypatch.setattr(learning, "train", counting_train)
    capsys.readouterr()
    assert learning.main([*common, "--resume", "--results", str(tmp_path / "R2.md")]) == 0
    assert trained == [10]  # seed 0 reused, seed 10 trained again
    out = capsys.readouterr().out
    assert "ppo_s0: reusing the complete run in" in out
    # The run trained again says why it was not reused.
    assert "ppo_s10: not reusing " in out and "its train.json says status 'stopped'" in out
    again = json.loads((tmp_path / "out" / "learning.json").read_text())
    assert again["tiny_a"]["returns"] == first["tiny_a"]["returns"]  # same models, same returns
    # Without --resume every run trains again, and another budget is never reused.
    trained.clear()
    assert learning.main([*common, "--results", str(tmp_path / "R3.md")]) == 0
    assert trained == [0, 10]
    trained.clear()
    budget = [*common, "--timesteps", "160", "--resume", "--results", str(tmp_path / "R4.md")]
    capsys.readouterr()
    assert learning.main(budget) == 0
    assert trained == [0, 10]
    assert "this run 'timesteps: 160'" in capsys.readouterr().out


def test_continue_stopped_continues_a_stopped_run_from_its_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import benchmarks.learning as learning

    sc = str(_tiny(tmp_path / "a.yaml", "tiny_a", 0.03))
    common = ["--scenarios", sc, "--algos", "ppo", "--timesteps", "256", "--seeds", "0"]
    common += ["--eval-seeds", "900", "--episodes", "2", "--out", str(tmp_path / "out")]
    assert learning.main([*common, "--results", str(tmp_path / "R1.md")]) == 0
    # As if the run had stopped at about 130 steps: its train.json says so, and the checkpoints
    # after that are not there.
    run = tmp_path / "out" / "tiny_a" / "ppo_s0"
    record = run / "train.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "status": "stopped"}))
    kept = []
    for path in (run / "checkpoints").glob("*_steps.zip"):
        steps = int(path.name.rsplit("_", 2)[-2])
        if steps > 130:
            path.unlink()
        else:
            kept.append(steps)
    newest = max(kept)
    capsys.readouterr()
    argv = [*common, "--resume", "--continue-stopped", "--results", str(tmp_path / "R2.md")]
    assert learning.main(argv) == 0
    assert "ppo_s0: continuing the stopped run in" in capsys.readouterr().out
    done = json.loads(record.read_text())
    assert done["status"] == "complete" and done["resumed_from"] == newest
    assert f"(continued at {newest:,})" in (tmp_path / "R2.md").read_text()
    for extra in (["--continue-stopped"], ["--resume", "--continue-stopped", "--ray"]):
        with pytest.raises(SystemExit):
            learning.parse_args([*common, *extra])
    assert "--continue-stopped: " in capsys.readouterr().err


def test_two_scenarios_of_one_name_are_refused_before_training(tmp_path: Path) -> None:
    # Their runs would go to the same folders, out/<name>/<label>, one overwriting the other.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.learning import main
    from lmrecsim.errors import UsageError

    a = _tiny(tmp_path / "a.yaml", "tiny", 0.03)
    b = _tiny(tmp_path / "b.yaml", "tiny", 0.1)
    out = tmp_path / "out"
    argv = ["--scenarios", str(a), str(b), "--out", str(out), "--results", str(tmp_path / "R.md")]
    with pytest.raises(
        UsageError, match=r"--scenarios .*a.yaml and .*b.yaml are both named 'tiny'"
    ):
        main(argv)
    assert not out.exists()


def _result(lengths: bool = True):
    """A hand-made two-episode result: random, oracle and one PPO run."""
    import pandas as pd

    from benchmarks.learning import AgentRun, ScenarioResult

    index = pd.MultiIndex.from_tuples([(900, 0), (900, 1)], names=["seed", "episode"])
    returns = pd.DataFrame(
        {
            "ppo_s0": [6.0, 8.0],
            "random": [2.0, 2.0],
            "greedy": [4.0, 4.0],
            "linucb": [3.0, 1.0],
            "oracle": [10.0, 12.0],
        },
        index=index,
    )
    table = returns * 2 if lengths else None  # session lengths: twice the returns
    run = AgentRun("ppo_s0", "ppo", "candidate_scorer", 0, 1.0, 100)
    return ScenarioResult("tiny", [run], returns, {}, table)


def test_tables_show_session_lengths_and_fill_the_figure_rows() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.learning import gap_figure, scenario_markdown

    gaps: list = []
    text, targets = scenario_markdown(_result(), gaps=gaps)
    rows = {line.split("|")[1].strip(): line.split("|") for line in text.splitlines()[6:]}
    # Columns: policy, return, CI, gap, gap CI, session length, ...
    assert rows["ppo"][6].strip() == "14.0" and rows["random"][6].strip() == "4.0"
    assert rows["oracle (privileged)"][6].strip() == "22.0"
    # ppo: (7 - 2) / (11 - 2); greedy (4 - 2) / 9; linucb 0; random and the oracle are not bars.
    by_policy = {g["policy"]: g for g in gaps}
    assert list(by_policy) == ["ppo", "greedy", "linucb"]
    assert by_policy["ppo"]["gap"] == pytest.approx(5 / 9)
    assert by_policy["ppo"]["low"] <= 5 / 9 <= by_policy["ppo"]["high"]
    assert by_policy["greedy"]["gap"] == pytest.approx(2 / 9) and by_policy["linucb"]["gap"] == 0
    assert targets[0]["value"] == "56%" and not targets[0]["met"]
    assert gap_figure(gaps)[:8] == b"\x89PNG\r\n\x1a\n"
    # Without lengths (a result built by hand elsewhere) the column says n/a.
    text, _ = scenario_markdown(_result(lengths=False))
    assert "| 56% | [" in text and "| n/a | 7.00 |" in text


# Not marked slow (about 40 s, two Ray starts): --ray is how the benchmark outgrows one machine.
def test_ray_gives_the_results_of_one_process_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.learning import main

    sc = str(_tiny(tmp_path / "a.yaml", "tiny_a", 0.03))
    common = ["--scenarios", sc, "--timesteps", "256", "--seeds", "0", "--no-mlp"]
    common += ["--eval-seeds", "900", "--episodes", "3"]
    one, ray = tmp_path / "one", tmp_path / "ray"
    assert main([*common, "--out", str(one), "--results", str(tmp_path / "R1.md")]) == 0
    argv = [*common, "--ray", "--jobs", "2", "--out", str(ray)]
    assert main([*argv, "--results", str(tmp_path / "R2.md")]) == 0
    first = json.loads((one / "learning.json").read_text())["tiny_a"]
    second = json.loads((ray / "learning.json").read_text())["tiny_a"]
    assert second["returns"] == first["returns"]
    assert second["session_lengths"] == first["session_lengths"]

    # The run folders came back from the Ray workers, the same files as trained here (TensorBoard
    # names its event files by time and process).
    def files(folder: Path) -> set[str]:
        names = {str(p.relative_to(folder)) for p in folder.rglob("*")}
        return {"tb/events" if n.startswith("tb/events.out.tfevents.") else n for n in names}

    for label in ("ppo_s0", "dqn_s0"):
        back = files(ray / "tiny_a" / label)
        assert back == files(one / "tiny_a" / label) and {"model.zip", "tb/events"} <= back
        record = json.loads((ray / "tiny_a" / label / "train.json").read_text())
        assert record["status"] == "complete"
    assert [r["folder"] for r in second["runs"]] == [
        str(ray / "tiny_a" / "ppo_s0"),
        str(ray / "tiny_a" / "dqn_s0"),
    ]
    assert not list((ray / "tiny_a").glob(".*")), "a staging folder was left behind"
    # --resume with Ray: the complete run stays, the stopped one trains again (on Ray).
    record = ray / "tiny_a" / "ppo_s0" / "train.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "status": "stopped"}))
    capsys.readouterr()
    assert main([*argv, "--resume", "--results", str(tmp_path / "R3.md")]) == 0
    out = capsys.readouterr().out
    assert "dqn_s0: reusing the complete run in" in out
    assert "ppo_s0: not reusing" not in out  # decided here: the remote run starts afresh
    again = json.loads((ray / "learning.json").read_text())["tiny_a"]
    assert again["returns"] == first["returns"]
    assert json.loads(record.read_text())["status"] == "complete"


def test_an_error_on_a_ray_worker_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It was Ray's RayTaskError, whose text is the worker's whole traceback.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.learning import main
    from lmrecsim.errors import report_user_errors

    missing = tmp_path / "missing.csv"
    sc = tmp_path / "a.yaml"
    sc.write_text(f"extends: default\nname: missing\ncatalog: {{source: {missing}}}\n")
    argv = ["--ray", "--scenarios", str(sc), "--algos", "ppo", "--seeds", "0", "--timesteps"]
    argv += ["64", "--out", str(tmp_path / "o"), "--results", str(tmp_path / "R.md")]
    assert report_user_errors("benchmarks/learning.py", lambda: main(argv)) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert err == [
        f"benchmarks/learning.py: error: {sc}: catalog.source: {missing}: file not found "
        "(expected a .csv or .parquet catalog)"
    ]


def test_unpacking_a_run_replaces_the_earlier_runs_outputs_only(tmp_path: Path) -> None:
    import io
    import tarfile

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.learning import AgentRun
    from benchmarks.ray_pool import _without_lock, unpack_run
    from lmrecsim.agents.errors import AgentError
    from lmrecsim.atomic import LOCK_NAME, folder_lock

    sent = tmp_path / "sent"
    (sent / "checkpoints").mkdir(parents=True)
    (sent / "model.zip").write_bytes(b"new model")
    (sent / "checkpoints" / "model_64_steps.zip").write_bytes(b"new checkpoint")
    (sent / "train.json").write_text('{"status": "finished"}')
    (sent / LOCK_NAME).write_text("123\n")  # the worker's run's lock file: not sent
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(sent, arcname=".", filter=_without_lock)
    assert LOCK_NAME not in {
        Path(m).name
        for m in tarfile.open(fileobj=io.BytesIO(buffer.getvalue()), mode="r:gz").getnames()
    }
    folder = tmp_path / "out" / "tiny" / "ppo_s0"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "train.json").write_text('{"status": "running"}')
    (folder / "best_model.zip").write_bytes(b"old best")  # the earlier run's: removed
    (folder / "checkpoints" / "model_32_steps.zip").write_bytes(b"old checkpoint")
    (folder / "notes.txt").write_text("mine")  # not a run output: kept
    agent_run = AgentRun("ppo_s0", "ppo", "candidate_scorer", 0, 1.0, 64)
    with folder_lock(folder), pytest.raises(AgentError, match="is in use by another lmrecsim run"):
        unpack_run(agent_run, buffer.getvalue(), folder)  # a run is writing there: untouched
    assert (folder / "best_model.zip").read_bytes() == b"old best"
    run = unpack_run(agent_run, buffer.getvalue(), folder)
    assert run.folder == str(folder)
    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    files.discard(LOCK_NAME)
    assert files == {"model.zip", "checkpoints/model_64_steps.zip", "train.json", "notes.txt"}
    assert (folder / "train.json").read_text() == '{"status": "finished"}'
    assert sorted(p.name for p in folder.parent.iterdir()) == ["ppo_s0"]  # no staging left


def test_ray_with_a_blank_address_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.learning import main

    with pytest.raises(SystemExit) as exc:
        main(["--ray", " ", "--quick"])
    assert exc.value.code == 2
    assert "--ray: blank address" in capsys.readouterr().err
