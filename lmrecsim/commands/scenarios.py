"""``lmrecsim scenarios``: list the shipped scenarios, show one resolved, validate scenario files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lmrecsim.errors import user_errors


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scenarios",
        help="list, show and validate scenario files",
        description="Scenario files describe whole experiments (see docs/scenarios.md). 'list' prints "
        "the shipped scenarios, 'show' prints one as resolved YAML (after 'extends'), 'validate' "
        "checks files against the schema.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    p_list = actions.add_parser("list", help="shipped scenarios with a one-line description")
    p_list.set_defaults(func=run_list)

    p_show = actions.add_parser(
        "show", help="print a scenario as resolved YAML (extends merged, defaults filled in)"
    )
    p_show.add_argument("name", metavar="NAME", help="shipped scenario name or YAML path")
    p_show.set_defaults(func=run_show)

    p_val = actions.add_parser(
        "validate",
        help="check scenario files; exit 0 when all are valid, 2 otherwise",
        description="Validate each file (extends chain included). Prints 'FILE: ok' for valid files on "
        "stdout and one line per invalid file on stderr; exits 2 when any file is invalid.",
    )
    p_val.add_argument(
        "files", nargs="+", metavar="FILE", help="scenario YAML paths or shipped names"
    )
    p_val.add_argument(
        "--build",
        action="store_true",
        help="also build each scenario's world and agent (encodes the catalog; catches unknown "
        "topics, personas, catalog files and agent hyperparameters SB3 rejects, in every "
        "algorithm's section)",
    )
    p_val.set_defaults(func=run_validate)


def run_list(args: argparse.Namespace) -> int:
    from lmrecsim.scenarios import list_scenarios

    rows = list_scenarios()
    width = max((len(name) for name, _ in rows), default=0)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from lmrecsim.scenarios import load_scenario, scenario_to_yaml

    sys.stdout.write(scenario_to_yaml(load_scenario(args.name)))
    return 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _build(scenario: Any) -> None:
    """Build the scenario's world and its agent (an SB3 model over one user), as `train` would,
    so that a typo in agent.hyperparameters fails here too; the sections for the algorithms it
    does not train (`--algo` can pick them) are checked for unknown keys and wrong kinds."""
    from lmrecsim.agents.build import build_agent, check_other_sections
    from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv
    from lmrecsim.envs.world import build_world

    world = build_world(scenario)
    build_agent(scenario, BatchedRecommendationVecEnv(scenario, scenario.agent.n_envs, world=world))
    check_other_sections(scenario)


def run_validate(args: argparse.Namespace) -> int:
    from lmrecsim.scenarios import load_scenario

    errors = user_errors()
    n_bad = 0
    for ref in args.files:
        try:
            scenario = load_scenario(ref)
            if args.build:
                _build(scenario)
        except errors as exc:
            n_bad += 1
            print(_one_line(exc), file=sys.stderr)
            continue
        print(f"{ref}: ok ({scenario.name})")
    return 2 if n_bad else 0
