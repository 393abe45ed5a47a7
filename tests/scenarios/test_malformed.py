"""Every file of the malformed corpus gives one clear line through the CLI, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lmrecsim.cli import main

MALFORMED = Path(__file__).resolve().parent / "malformed"

# file -> a fragment its one-line error must contain (the key path and what was expected).
EXPECTED: dict[str, str] = {
    "too_short_topics.yaml": "catalog.topics: [] is too short (expected at least 1 item)",
    "nan_reward_weight.yaml": "reward.click: nan is invalid (expected a finite number)",
    "inf_appeal_weight.yaml": "response.appeal_weight: inf is invalid (expected a finite number)",
    "range_negative_eval_seed.yaml": "evaluation.seeds[1]: -1 is out of range (expected a number "
    ">= 0)",
    "range_eval_seed_too_large.yaml": "evaluation.seeds[1]: 9223372036854775808 is out of range "
    "(expected a number <= 9223372036854775807)",
    "range_timesteps_huge.yaml": "agent.timesteps: 99999999999999999999 is out of range "
    "(expected a number <= 200000000000)",
    "range_agent_seed_too_large.yaml": "agent.seed: 99999999999999999999 is out of range (expected "
    "a number <= 4294966271)",
    "duplicate_key.yaml": "invalid YAML at line 6, column 1: duplicate key 'candidates' (first at "
    "line 2)",
    "bad_device.yaml": "encoder.device: 'tpu' is invalid (expected a string matching",
    "bad_literal_algo.yaml": "agent.algo: 'sac' is not one of ppo, dqn, maskable_ppo",
    "bad_literal_index.yaml": "candidates.index: 'hnsw' is not one of exact, ivf",
    "range_ivf_probe_zero.yaml": "candidates.ivf_probe: 0 is out of range (expected a number >= 1)",
    "slate_with_maskable_ppo.yaml": "agent.algo: 'maskable_ppo' with candidates.slate_size 3 (expected ppo or dqn",
    "slate_larger_than_k.yaml": "slate_size (5) must be <= k (4)",
    "bad_literal_drift_kind.yaml": "users.drift.kind: 'sudenn' is not one of none, gradual, abrupt, periodic",
    "bad_literal_reward.yaml": "reward.name: 'money' is invalid (expected one of click,",
    "bad_metric_name.yaml": "evaluation.metrics[1]: 'clicks' is not one of return, ctr,",
    "binary.yaml": "not UTF-8 text",
    "undefined_alias.yaml": "invalid YAML at line 1, column 8: found undefined alias",
    "empty.yaml": "file is empty (expected a YAML mapping",
    "only_comments.yaml": "file is empty (expected a YAML mapping",
    "extends_cycle_a.yaml": "extends: cycle (extends_cycle_a.yaml -> extends_cycle_b.yaml -> "
    "extends_cycle_c.yaml -> extends_cycle_a.yaml)",
    "extends_cycle_b.yaml": "extends: cycle (extends_cycle_b.yaml -> extends_cycle_c.yaml",
    "extends_cycle_c.yaml": "extends: cycle (extends_cycle_c.yaml -> extends_cycle_a.yaml",
    "extends_self.yaml": "extends_self.yaml: extends: cycle (extends_self.yaml -> extends_self.yaml)",
    "extends_directory.yaml": "extends: parents/: not a file",
    "extends_empty.yaml": "extends: '' is invalid (expected a scenario name or path)",
    "extends_invalid_parent.yaml": "invalid_parent.yaml: candidates.k: 0 is out of range (expected a "
    "number >= 2) (in the extends chain of",
    "extends_missing_file.yaml": "extends: ./does_not_exist.yaml: scenario file not found",
    "extends_missing_parent.yaml": "extends: no_such_scenario: unknown scenario (expected a file path or "
    "one of: ",
    "extends_not_string.yaml": "extends: ['default', 'long_tail'] is invalid (expected a scenario name",
    "invalid_yaml_indent.yaml": "invalid YAML at line 3",
    "invalid_yaml_tab.yaml": "invalid YAML at line 2, column 1: found character '\\t'",
    "invalid_yaml_unclosed.yaml": "invalid YAML at line 3",
    "latin1.yaml": "not UTF-8 text",
    "nested_too_deep.yaml": "invalid YAML: collections nested too deeply",
    "alias_bomb.yaml": "invalid YAML: aliases expand to more than 1,000,000 values",
    "alias_recursive.yaml": "invalid YAML: an alias refers to a collection that contains it",
    "nul_character.yaml": "invalid YAML at line 2, column 10: character #x0000 (special "
    "characters are not allowed)",
    "utf16_bom.yaml": "not UTF-8 text",
    "non_string_key.yaml": "key 1 is not a string",
    "range_arrival_order.yaml": "catalog.new_items: arrival_end (10) must be >= arrival_start (30)",
    "range_arrival_end_huge.yaml": "catalog.new_items.arrival_end: 100000000000000000000 is out of "
    "range (expected a number <= 100000)",
    "range_drift_period_huge.yaml": "users.drift.period: 100000000000000000000000 is out of range "
    "(expected a number <= 100000)",
    "range_arrival_start_zero.yaml": "catalog.new_items.arrival_start: 0 is out of range (expected a "
    "number >= 1)",
    "range_empty_name.yaml": "name: '' is too short (expected at least 1 character)",
    "range_fraction_above_one.yaml": "users.new_user_fraction: 1.5 is out of range (expected a number "
    "<= 1.0)",
    "range_head_fraction_zero.yaml": "catalog.popularity.head_fraction: 0 is out of range (expected a "
    "number > 0.0)",
    "range_history_too_long.yaml": "users.history_max: 100000000000 is out of range (expected a "
    "number <= 256)",
    "range_history_order.yaml": "users: history_max (2) must be >= history_min (8)",
    "range_k_too_small.yaml": "candidates.k: 1 is out of range (expected a number >= 2)",
    "range_metrics_empty.yaml": "evaluation.metrics: [] is too short (expected at least 1 item)",
    "range_negative_horizon.yaml": "episode.horizon: -5 is out of range (expected a number >= 1)",
    "range_new_items_fraction.yaml": "catalog.new_items.fraction: 0.9 is out of range (expected a "
    "number <= 0.5)",
    "range_patience_order.yaml": "users.patience: initial_high (1.0) must be >= initial_low (1.5)",
    "range_patience_above_cap.yaml": "users.patience: initial_high (2.0) must be <= max_patience (1.5)",
    "range_quota_above_k.yaml": "candidates: new_item_quota (12) must be <= k (10)",
    "range_reward_weight_huge.yaml": "reward.dwell: 1e+308 is out of range (expected a number <= "
    "1000000.0)",
    "range_shares_overflow.yaml": "candidates.popular: 1e+308 is out of range (expected a number "
    "<= 1000000.0)",
    "range_dwell_scale_huge.yaml": "response.dwell_scale: 1e+308 is out of range (expected a number "
    "<= 1000000.0)",
    "range_seeds_empty.yaml": "evaluation.seeds: [] is too short (expected at least 1 item)",
    "repeated_metric.yaml": "evaluation.metrics: ['return', 'ctr', 'return'] is invalid (expected "
    "distinct metrics; 'return' is repeated)",
    "range_seeds_repeated.yaml": "evaluation.seeds: [1000, 1001, 1000] is invalid (expected "
    "distinct seeds; 1000 is repeated)",
    "range_zero_shares.yaml": "candidates: at least one of popular, nearest, random must be > 0",
    "top_level_list.yaml": "top level is a list (expected a mapping of scenario keys)",
    "top_level_scalar.yaml": "top level is a str (expected a mapping of scenario keys)",
    "unknown_key_nested.yaml": "users.drift.speed: unknown key (expected one of: kind, target, rate,",
    "unknown_key_top.yaml": "horizon: unknown key (expected one of: name, description, extends,",
    "unknown_key_typo.yaml": "candidates.new_items_quota: unknown key (expected one of: k, popular,",
    "wrong_type_beta_list.yaml": "response.beta: [1, 2] is invalid (expected a number)",
    "wrong_type_horizon_bool.yaml": "episode.horizon: True is invalid (expected an integer)",
    "wrong_type_horizon_string.yaml": "episode.horizon: 'long' is invalid (expected an integer)",
    "wrong_type_hyperparameters.yaml": "agent.hyperparameters: ['learning_rate', 0.001] is invalid "
    "(expected a mapping of keys)",
    "mixed_hyperparameter_sections.yaml": "agent.hyperparameters: expected either per-algorithm "
    "sections (ppo, dqn, maskable_ppo) or plain keyword arguments, not both",
    "hyperparameter_section_scalar.yaml": "agent.hyperparameters: section 'dqn': expected a mapping",
    "wrong_type_k_float.yaml": "candidates.k: 20.5 is invalid (expected an integer)",
    "wrong_type_mask_consumed.yaml": "candidates.mask_consumed: 'maybe' is invalid (expected true or "
    "false)",
    "wrong_type_name_list.yaml": "name: ['a', 'b'] is invalid (expected a string)",
    "wrong_type_personas_empty_list.yaml": "users.personas: [] is invalid (expected 'default', a persona",
    "wrong_type_personas_number.yaml": "users.personas: 42 is invalid (expected 'default', a persona",
    "wrong_type_seeds_string.yaml": "evaluation.seeds: '1000, 1001' is invalid (expected a list)",
    "wrong_type_users_scalar.yaml": "users: 5 is invalid (expected a mapping of keys)",
    "wrong_type_zipf_string.yaml": "catalog.popularity.zipf_exponent: 'steep' is invalid (expected a "
    "number)",
}

# The file whose fault the message names, when it is not the file given (cycles, bad parents).
FAULT_IN = {
    "extends_cycle_a.yaml": "extends_cycle_c.yaml",
    "extends_cycle_b.yaml": "extends_cycle_a.yaml",
    "extends_cycle_c.yaml": "extends_cycle_b.yaml",
    "extends_invalid_parent.yaml": "invalid_parent.yaml",
}

CORPUS = sorted(p.name for p in MALFORMED.glob("*.yaml"))


def test_corpus_is_large_and_fully_described() -> None:
    assert len(CORPUS) >= 30
    assert set(CORPUS) == set(EXPECTED), "every malformed file needs its expected message"


@pytest.mark.parametrize("name", CORPUS)
def test_malformed_file_gives_one_line_and_exit_2(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = MALFORMED / name
    code = main(["scenarios", "validate", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert "Traceback" not in line
    assert EXPECTED[name] in line
    # The line starts with the file that holds the fault.
    first = line.split(": ", 1)[0]
    assert first.endswith(FAULT_IN.get(name, name)), line


def test_one_line_per_invalid_file_and_ok_for_valid_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = [str(MALFORMED / n) for n in ("empty.yaml", "unknown_key_top.yaml", "binary.yaml")]
    code = main(["scenarios", "validate", bad[0], "default", bad[1], "long_tail", bad[2]])
    out, err = capsys.readouterr()
    assert code == 2
    assert out.splitlines() == ["default: ok (default)", "long_tail: ok (long_tail)"]
    assert len(err.splitlines()) == 3
    for path, line in zip(bad, err.splitlines(), strict=True):
        assert Path(path).name in line


@pytest.mark.parametrize(
    "names",
    [
        ["binary.yaml"],
        ["extends_cycle_a.yaml", "wrong_type_users_scalar.yaml"],
        ["invalid_yaml_indent.yaml", "latin1.yaml", "extends_invalid_parent.yaml"],
    ],
)
def test_subprocess_prints_no_traceback(names: list[str]) -> None:
    paths = [str(MALFORMED / n) for n in names]
    proc = subprocess.run(
        [sys.executable, "-m", "lmrecsim", "scenarios", "validate", *paths],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == len(names)
    for name, line in zip(names, lines, strict=True):
        assert EXPECTED[name] in line


def test_show_of_a_malformed_file_is_one_line_with_prefix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["scenarios", "show", str(MALFORMED / "bad_literal_drift_kind.yaml")])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("lmrecsim: error: ")
    assert EXPECTED["bad_literal_drift_kind.yaml"] in err
