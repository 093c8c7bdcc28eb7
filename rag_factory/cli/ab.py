"""``rag-factory ab``: start, inspect, ramp, promote and roll back A/B experiments on a registry."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from rag_factory.cli.registry import open_registry
from rag_factory.experiments.framework import ABTestingFramework
from rag_factory.experiments.rollout import RolloutManager, RolloutPlan, RolloutState
from rag_factory.experiments.sqlite_store import SQLiteExperimentStore
from rag_factory.storage import database_path

Handler = Callable[[RolloutManager, argparse.Namespace], int]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach the ``ab`` command group."""
    group = subparsers.add_parser("ab", help="A/B experiments and canary rollouts of an alias")
    group.add_argument("--registry", metavar="PATH", help="registry directory (as for `rag-factory registry`)")
    commands = group.add_subparsers(dest="ab_command", required=True, metavar="SUBCOMMAND")

    def leaf(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text)
        parser.set_defaults(func=lambda args: _run(handler, args))
        return parser

    p = leaf("start", _start, "start ramping CANDIDATE on NAME@ALIAS")
    p.add_argument("name", metavar="EXPERIMENT")
    p.add_argument("model_name", metavar="MODEL_NAME")
    p.add_argument("candidate", metavar="CANDIDATE", help="model id or name@version")
    p.add_argument("--alias", default="production")
    p.add_argument("--steps", help="comma-separated traffic shares, e.g. 0.01,0.05,0.1,0.25,0.5,1")
    p.add_argument("--min-samples-per-step", type=int, default=100)
    p.add_argument("--min-step-duration", type=float, default=300.0, metavar="SECONDS")
    p.add_argument("--max-error-rate", type=float, default=0.02)
    p.add_argument("--minimum-samples", type=int, default=100, help="samples per arm before any decision")
    for name, handler, text in (
        ("status", _status, "show one experiment"),
        ("analyze", _analyze, "analyse it"),
        ("tick", _tick, "check guardrails and advance if a step is done"),
        ("stop", _stop, "end it without moving the alias"),
        ("promote", _promote, "point the alias at the candidate now"),
    ):
        leaf(name, handler, text).add_argument("name", metavar="EXPERIMENT")
    leaf("list", _list, "list experiments")
    p = leaf("ramp", _ramp, "advance to the next step (or to --split)")
    p.add_argument("name", metavar="EXPERIMENT")
    p.add_argument("--split", type=float)
    p = leaf("rollback", _rollback, "stop sending traffic to B; after a promotion, move the alias back")
    p.add_argument("name", metavar="EXPERIMENT")
    p.add_argument("--reason", default="rolled back by hand")


def _run(handler: Handler, args: argparse.Namespace) -> int:
    registry = open_registry(args)
    store = SQLiteExperimentStore(database_path(registry.path))
    try:
        return handler(RolloutManager(registry, ABTestingFramework(store=store), store), args)
    finally:
        store.close()
        registry.close()


def _show(manager: RolloutManager, state: RolloutState) -> None:
    n_a, n_b = manager.store.load_results(state.test_name).counts()
    print(
        f"{state.test_name}: {state.status} {state.model_name}@{state.alias} "
        f"A={state.model_a_id} B={state.model_b_id} split={state.split:.0%} "
        f"step {state.step_index + 1}/{len(state.plan.steps)} samples A={n_a} B={n_b}"
        + (f" ({state.reason})" if state.reason else "")
    )


def _start(manager: RolloutManager, args: argparse.Namespace) -> int:
    plan_fields: dict[str, object] = {
        "min_samples_per_step": args.min_samples_per_step,
        "min_step_duration_s": args.min_step_duration,
        "max_error_rate": args.max_error_rate,
    }
    if args.steps:
        plan_fields["steps"] = [float(s) for s in args.steps.split(",")]
    state = manager.start(
        args.name,
        args.model_name,
        args.candidate,
        alias=args.alias,
        plan=RolloutPlan.model_validate(plan_fields),
        minimum_samples=args.minimum_samples,
    )
    _show(manager, state)
    return 0


def _status(manager: RolloutManager, args: argparse.Namespace) -> int:
    _show(manager, manager.state(args.name))
    return 0


def _list(manager: RolloutManager, args: argparse.Namespace) -> int:
    for state in manager.states():
        _show(manager, state)
    return 0


def _analyze(manager: RolloutManager, args: argparse.Namespace) -> int:
    manager.state(args.name)
    analysis = manager.framework.analyze(args.name)
    print(json.dumps(analysis.result.model_dump(mode="json"), indent=2))
    return 0


def _tick(manager: RolloutManager, args: argparse.Namespace) -> int:
    _show(manager, manager.tick(args.name))
    return 0


def _ramp(manager: RolloutManager, args: argparse.Namespace) -> int:
    _show(manager, manager.ramp(args.name, args.split))
    return 0


def _stop(manager: RolloutManager, args: argparse.Namespace) -> int:
    _show(manager, manager.stop(args.name))
    return 0


def _promote(manager: RolloutManager, args: argparse.Namespace) -> int:
    _show(manager, manager.promote(args.name))
    return 0


def _rollback(manager: RolloutManager, args: argparse.Namespace) -> int:
    _show(manager, manager.rollback(args.name, args.reason))
    return 0
