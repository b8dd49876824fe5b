"""Command line: `swarm-medic run | check | pause | resume | rollout | runbooks`, `--version`."""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import sys
import time
from collections.abc import Sequence

from swarm_medic import __version__
from swarm_medic.core.errors import SettingsError, SwarmMedicError
from swarm_medic.core.ledger import MAX_TEXT, Pause
from swarm_medic.core.runbook import RUNBOOK_FLAG, Runbook, env_name, flag_form
from swarm_medic.core.settings import DAY, Count, Duration, Settings, add_arguments, load
from swarm_medic.pipeline import registry


def _engine_factory(settings: Settings):  # type: ignore[no-untyped-def]
    from swarm_medic.swarm.engine import DockerEngine

    return lambda: DockerEngine(settings.docker_host or None, timeout=settings.api_timeout)


def _add_runbook_setting(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        RUNBOOK_FLAG,
        dest="runbook_setting",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="a runbook's own setting, e.g. orphan-container.grace=2m (repeatable; "
        "`swarm-medic runbooks NAME` lists them) [env SWARM_MEDIC_RUNBOOK_<NAME>_<KEY>]",
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="swarm-medic",
        description="Finds and heals stuck tasks and paused updates on a Docker Swarm.",
    )
    p.add_argument("--version", action="version", version=f"swarm-medic {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="the daemon: watch, scan, heal, record")
    add_arguments(run)
    _add_runbook_setting(run)
    check = sub.add_parser(
        "check",
        help="one-shot diagnosis (exit 0 healthy, 1 findings, 2 could not check); changes nothing",
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    add_arguments(check)
    _add_runbook_setting(check)
    pause = sub.add_parser(
        "pause",
        help="stop every instance from acting, swarm-wide, until resume (or --for); "
        "findings are still reported",
    )
    pause.add_argument(
        "--for",
        dest="pause_for",
        type=PAUSE_FOR,
        default=None,
        metavar="DURATION",
        help="end the pause by itself after this long, e.g. 30m or 2h (default: until resume)",
    )
    pause.add_argument(
        "--reason", required=True, type=_reason, help="why: shown in logs, /healthz and check"
    )
    add_arguments(pause)
    resume = sub.add_parser("resume", help="end the pause: every instance acts again")
    add_arguments(resume)
    _add_rollout(sub)
    rbs = sub.add_parser("runbooks", help="list the runbooks, or explain one")
    rbs.add_argument("name", nargs="?", help="a runbook to explain")
    rbs.add_argument("--runbooks-dir", default=None, help="an extra directory of runbooks")
    _add_runbook_setting(rbs)
    return p


PAUSE_FOR = Duration(1.0, 90 * DAY)
KEEP = Count(1000, low=0)


def _keep(text: str) -> int:
    try:
        return KEEP(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_rollout(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rollout = sub.add_parser(
        "rollout",
        help="roll a new config or secret content out to a service (a versioned object named "
        "by its content, swapped in by the service's own rolling update); remove old versions",
        description="Swarm cannot change a config or secret in place: each content becomes "
        "an object <family>-<12 hex of its sha256> (same content, same name: nothing to do), "
        "and the service's reference is swapped in one update that rolls by its own update "
        "config. Old versions no service (or its previous spec) uses are removed, keeping the "
        "newest --keep.",
    )
    kinds = rollout.add_subparsers(dest="rollout_what", required=True)
    for kind in ("config", "secret"):
        p = kinds.add_parser(kind, help=f"roll FILE out as the {kind} SERVICE has at TARGET")
        p.add_argument("rollout_service", metavar="SERVICE", help="the service, by name or id")
        p.add_argument(
            "rollout_target",
            metavar="TARGET",
            help=f"the path of the {kind} in the container (its reference's target), e.g. "
            + ("/etc/app.conf" if kind == "config" else "db_password or /run/secrets/db_password"),
        )
        p.add_argument(
            "rollout_file", metavar="FILE", help="the new content (read as bytes; - for stdin)"
        )
    stack = kinds.add_parser(
        "stack",
        help="roll out every config and secret with a file: in a stack's compose file",
    )
    stack.add_argument("rollout_service", metavar="STACK", help="the stack's name")
    stack.add_argument("rollout_target", metavar="COMPOSE_FILE", help="its compose file")
    kinds.add_parser("gc", help="only remove old versions no service or previous spec uses")
    for p in kinds.choices.values():
        p.add_argument(
            "--keep",
            type=_keep,
            default=3,
            metavar="K",
            help="unused versions kept per family, newest first, besides those any service's "
            "spec or previous spec uses (default 3)",
        )
        p.add_argument("--json", action="store_true", help="machine-readable output")
        add_arguments(p, only=("engine",))  # an operator's command: no daemon settings


def _reason(text: str) -> str:
    text = text.strip()
    if not text or len(text) > MAX_TEXT:
        raise argparse.ArgumentTypeError(f"give a reason of 1 to {MAX_TEXT} characters")
    return text


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no USER and no passwd entry (a container)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _settings(args: argparse.Namespace) -> Settings:
    return load({k: v for k, v in vars(args).items() if isinstance(v, str)})


def cmd_run(args: argparse.Namespace) -> int:
    from swarm_medic.app import App
    from swarm_medic.telemetry.journal import configure_logging

    settings = _settings(args)
    configure_logging(settings.log_format, settings.log_level)
    return App(settings, _engine_factory(settings), runbook_settings=args.runbook_setting).run()


def cmd_check(args: argparse.Namespace) -> int:
    from swarm_medic.check import diagnose, render_json, render_table

    settings = _settings(args)
    runbooks = registry.load(registry.default_dirs(settings.runbooks_dir))
    runbooks.configure(args.runbook_setting, os.environ)
    try:
        engine = _engine_factory(settings)()
        report = diagnose(engine, settings, runbooks, time.time())
    except SwarmMedicError as exc:
        print(f"swarm-medic check: could not check: {exc}", file=sys.stderr)
        return 2
    (render_json if args.json else render_table)(report, sys.stdout)
    if report.decisions:
        return 1
    return 2 if report.errors else 0  # a runbook that failed means the check is incomplete


def cmd_pause(args: argparse.Namespace) -> int:
    from swarm_medic.pipeline.pause import set_pause

    settings = _settings(args)
    now = time.time()
    until = None if args.pause_for is None else now + args.pause_for
    pause = Pause(reason=args.reason, at=now, by=_who(), until=until)
    try:
        switched = set_pause(_engine_factory(settings)(), settings.ledger_name, pause, now)
    except SwarmMedicError as exc:
        print(f"swarm-medic pause: not paused: {exc}", file=sys.stderr)
        return 2
    if switched.before is not None:
        print(f"replaces: {switched.before.describe()}")
    print(f"{pause.describe()}\nevery instance stops acting at its next scan")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from swarm_medic.pipeline.pause import set_pause

    settings = _settings(args)
    now = time.time()
    try:
        switched = set_pause(_engine_factory(settings)(), settings.ledger_name, None, now)
    except SwarmMedicError as exc:
        print(f"swarm-medic resume: not resumed: {exc}", file=sys.stderr)
        return 2
    if switched.before is None:
        print("not paused: nothing to resume")
    else:
        print(f"resumed; was {switched.before.describe()}")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from swarm_medic import rollout

    settings = _settings(args)
    operands = [v for v in (getattr(args, k, None) for k in ROLLOUT_OPERANDS) if isinstance(v, str)]
    return rollout.run(
        args.rollout_what,
        operands,
        _engine_factory(settings),
        keep=args.keep,
        as_json=args.json,
        out=sys.stdout,
        err=sys.stderr,
        key=settings.secret.encode(),  # a secret's version is named by a keyed digest
    )


ROLLOUT_OPERANDS = ("rollout_service", "rollout_target", "rollout_file")


def _explain(rb: Runbook) -> str:
    out = f"{rb.name}  ({rb.source})\n\n{rb.doc.strip()}\n"
    if rb.needs:
        out += f"\nNeeds: {', '.join(sorted(rb.needs))} (not run where there are none)\n"
    if rb.plan_fn is None:
        out += "\nReport only: this runbook plans no action.\n"
    if not rb.settings:
        return out + "\nSettings: none.\n"
    out += f"\nSettings ({flag_form(rb.name, 'KEY')}, or the variable shown):\n"
    for s in rb.settings:
        source, text = rb.given.get(s.name, ("default", s.default))
        out += (
            f"\n  {s.name}={s.metavar}  [env {env_name(rb.name, s.name)}]\n"
            f"      {s.help}\n"
            f"      default: {s.default}\n      current: {text}  ({source})\n"
        )
    return out


def cmd_runbooks(args: argparse.Namespace) -> int:
    runbooks = registry.load(registry.default_dirs(args.runbooks_dir or ""))
    runbooks.configure(args.runbook_setting, os.environ)
    if args.name:
        rb = runbooks.runbooks.get(args.name)
        if rb is None:
            print(
                f"no runbook named {args.name!r}; known: {', '.join(sorted(runbooks.runbooks))}",
                file=sys.stderr,
            )
            return 2
        print(_explain(rb), end="")
        return 0
    width = max((len(n) for n in runbooks.runbooks), default=0)
    for rb in sorted(runbooks.runbooks.values(), key=lambda r: r.name):
        print(f"{rb.name.ljust(width)}  {rb.summary}")
    for e in runbooks.errors:
        print(f"error: {e.path}: {e.message}", file=sys.stderr)
    return 1 if runbooks.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {
            "run": cmd_run,
            "check": cmd_check,
            "pause": cmd_pause,
            "resume": cmd_resume,
            "rollout": cmd_rollout,
            "runbooks": cmd_runbooks,
        }[args.command](args)
    except SettingsError as exc:
        print(f"swarm-medic: wrong setting: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
