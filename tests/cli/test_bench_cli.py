"""``lmrecsim bench``: targets in the printed and JSON output; ``--learning`` forwards to the learning benchmark."""

from __future__ import annotations

import pytest

from lmrecsim.cli import main


def test_bench_learning_forwards_its_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--learning", "--learning-args=--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    # The learning benchmark's own options, not the speed benchmark's.
    assert "--timesteps" in out and "--scenarios" in out


def test_bench_prints_and_writes_each_target_with_whether_it_is_met(tmp_path, monkeypatch, capsys):
    import json

    from lmrecsim.commands import bench

    figures = [
        bench.Figure("ppo_default_over_zero_cost", 0.81, "ratio"),
        bench.Figure("text_mode_batched_cached_over_naive", 4.2, "ratio"),
        bench.Figure("single_env_steps_per_s", 1500.0, "steps/s"),
    ]
    calls = []

    def run_all(quick=False, progress=False):
        calls.append((quick, progress))
        return figures

    monkeypatch.setattr(bench, "run_all", run_all)
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    assert calls == [(True, True)]  # a progress bar over the parts unless --no-progress
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["ppo_default_over_zero_cost"].endswith("target >= 0.8: met")
    assert lines["text_mode_batched_cached_over_naive"].endswith("target >= 5: NOT met")
    assert "target" not in lines["single_env_steps_per_s"]
    records = {r["name"]: r for r in json.loads(out.read_text())}
    assert records["ppo_default_over_zero_cost"] == {
        "name": "ppo_default_over_zero_cost",
        "value": 0.81,
        "unit": "ratio",
        "target": 0.8,
        "met": True,
    }
    assert records["text_mode_batched_cached_over_naive"]["met"] is False
    assert set(records["single_env_steps_per_s"]) == {"name", "value", "unit"}


def test_bench_no_progress_is_passed_on(monkeypatch, capsys):
    from lmrecsim.commands import bench

    calls = []
    monkeypatch.setattr(
        bench,
        "run_all",
        lambda quick=False, progress=False: calls.append(progress) or [bench.Figure("x", 1.0, "s")],
    )
    assert main(["bench", "--no-progress"]) == 0
    assert calls == [False]


def test_bench_env_measures_single_items_and_slates(tmp_path):
    from lmrecsim.commands import bench
    from tests.envs.test_vec_env import small_world

    figures = {f.name: f.value for f in bench.bench_env(small_world(tmp_path), 0.05)}
    for name in (
        "batched_env_64_user_steps_per_s",
        "batched_env_256_user_steps_per_s",
        "batched_env_64_slate3_user_steps_per_s",
        "single_env_steps_per_s",
    ):
        assert figures[name] > 0, name
    assert figures["batched_env_64_slate3_over_single"] == (
        figures["batched_env_64_slate3_user_steps_per_s"]
        / figures["batched_env_64_user_steps_per_s"]
    )


def test_bench_ppo_rates_leave_no_sb3_folders_in_the_temp_dir(tmp_path, monkeypatch):
    """Figure 1's models log nowhere: SB3's default logger made an empty ``SB3-<date>`` folder in
    the temporary directory at every ``learn`` call, which each bench run left behind."""
    import tempfile

    from stable_baselines3.common.env_util import make_vec_env

    from lmrecsim.commands import bench

    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    venv = make_vec_env("CartPole-v1", n_envs=1, seed=0)
    rates = bench._ppo_rates({"cart": (venv, "mlp_cartpole")}, timesteps=1, rounds=1)
    assert rates["cart"] > 0
    assert sorted(p.name for p in tmp_path.glob("SB3-*")) == []
