"""Command line: `swarm-medic run | check | pause | resume | approve | report | rollout |
runbooks | uninstall`, `--version`."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from swarm_medic import __version__
from swarm_medic.config import add_arguments, load
from swarm_medic.core.errors import SettingsError, SwarmMedicError
from swarm_medic.core.ledger import MAX_TEXT, Approval, Ledger, Pause
from swarm_medic.core.parsers import DAY, MINUTE, Count, Duration, say_duration
from swarm_medic.core.records import HORIZON
from swarm_medic.core.runbook import RUNBOOK_FLAG, Runbook, env_name, flag_form
from swarm_medic.core.settings import Settings
from swarm_medic.core.versions import DEFAULT_KEEP
from swarm_medic.pipeline import registry

# Exit codes, the same in every command (README "Commands"; `check --help` says them).
EXIT_OK = 0
EXIT_FINDINGS = 1  # check: faults found
EXIT_USAGE = 2  # a wrong flag, argument or setting (argparse's own code)
EXIT_FAILED = 3  # could not do it: the engine unreachable or refusing, a check left incomplete
EXIT_PIPE = 128 + signal.SIGPIPE  # stdout closed by its reader (`| head`): said by nobody

EXIT_CODES = f"""exit codes (every command):
  {EXIT_OK}    done; check: healthy
  {EXIT_FINDINGS}    check: faults found
  {EXIT_USAGE}    a wrong flag, argument or setting
  {EXIT_FAILED}    could not do it: the engine unreachable or refusing, a runbook that failed,
       a ledger record that could not be read (report)
  {EXIT_PIPE}  the output was closed by its reader (e.g. | head): the command stops quietly
With --json, an error is also one JSON object on stdout: {{"ok": false, "error": "..."}}.
"""

# What each operator command reads besides the engine's address (its --help shows only these).
CHECK_GROUPS = ("safety", "runbooks", "engine")
LEDGER_ONLY = ("ledger_name",)


class _UsageError(Exception):
    def __init__(self, usage: str, message: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error comes back to `main` (which says it, in JSON too if asked)
    instead of exiting from inside the parser."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(self.format_usage(), f"{self.prog}: error: {message}")


def _engine_factory(settings: Settings):  # type: ignore[no-untyped-def]
    from swarm_medic.swarm.engine import DockerEngine

    engine = settings.engine
    return lambda: DockerEngine(engine.docker_host or None, timeout=engine.api_timeout)


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
    p = _Parser(
        prog="swarm-medic",
        description="Finds and heals stuck tasks and paused updates on a Docker Swarm.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"swarm-medic {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="the daemon: watch, scan, heal, record")
    add_arguments(run)
    _add_runbook_setting(run)
    check = sub.add_parser(
        "check",
        help=f"one-shot diagnosis (exit {EXIT_OK} healthy, {EXIT_FINDINGS} findings, "
        f"{EXIT_FAILED} could not check); changes nothing",
        description="One-shot diagnosis of the swarm, as the daemon would see it now: every "
        "runbook's findings and what the policy would do. Changes nothing.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    add_arguments(check, only=CHECK_GROUPS)
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
    add_arguments(pause, only=("engine",), names=LEDGER_ONLY)
    resume = sub.add_parser("resume", help="end the pause: every instance acts again")
    add_arguments(resume, only=("engine",), names=LEDGER_ONLY)
    approve = sub.add_parser(
        "approve",
        help="let the action proposed for an incident through, once (services labelled "
        "swarm-medic.approve=true, runbooks in --approve-runbooks); --list shows what waits",
    )
    approve.add_argument("incident", nargs="?", help="the incident id the proposal names")
    approve.add_argument(
        "--ttl",
        type=APPROVE_TTL,
        default=3600.0,
        metavar="DURATION",
        help="how long the approval may be applied, e.g. 30m (default: 1h)",
    )
    approve.add_argument(
        "--by", type=_reason, default=None, help="who approves (default: $SUDO_USER or $USER@host)"
    )
    approve.add_argument(
        "--list", action="store_true", help="show the proposals and approvals pending"
    )
    add_arguments(approve, only=("engine",), names=LEDGER_ONLY)
    report = sub.add_parser(
        "report",
        help="what the healing was worth: per runbook, incidents found, fixed, healed, fixes "
        "that did not hold, time to heal, the share closed with no human action, harm",
        description="What the healing was worth, from the incidents the leader recorded in "
        "the ledger: per runbook, the incidents found in the time asked for, fixed (acted on), "
        "verified healed, fixes that did not hold, time to heal p50/p95 (finding to verified "
        "heal), the share closed with no human action, and the harm rate (heals followed "
        "within 10 minutes by another incident of the service). README.md says how each "
        "figure is computed. Changes nothing.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument(
        "--since",
        type=_since,
        default=REPORT_SINCE(DEFAULT_SINCE),
        metavar="DURATION",
        help=f"count the incidents found this long ago or later, e.g. 24h or 30d (default "
        f"{DEFAULT_SINCE}; the ledger keeps {say_duration(HORIZON)})",
    )
    report.add_argument("--json", action="store_true", help="one JSON object")
    add_arguments(report, only=("engine",), names=LEDGER_ONLY)
    _add_rollout(sub)
    uninstall = sub.add_parser(
        "uninstall",
        help="list (--dry-run) or remove what swarm-medic left in the swarm: the ledger, its "
        "secrets, rollout's versions, swarm-medic.* service labels",
        description="Lists what swarm-medic left in the swarm and, without --dry-run, removes "
        "it: the ledger config, its configs and secrets, the versions `rollout` made that no "
        "service uses, the swarm-medic.* labels of services. Refuses while the medic's own "
        "service exists (`docker stack rm` it first).",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    uninstall.add_argument(
        "--dry-run", dest="list_only", action="store_true", help="only list; change nothing"
    )
    add_arguments(uninstall, only=("engine",), names=LEDGER_ONLY)
    rbs = sub.add_parser("runbooks", help="list the runbooks, or explain one")
    rbs.add_argument("name", nargs="?", help="a runbook to explain")
    rbs.add_argument("--runbooks-dir", default=None, help="an extra directory of runbooks")
    _add_runbook_setting(rbs)
    add_arguments(rbs, only=("engine",), names=LEDGER_ONLY)
    return p


PAUSE_FOR = Duration(1.0, 90 * DAY)
APPROVE_TTL = Duration(1.0, 30 * DAY)
KEEP = Count(1000, low=0)
REPORT_SINCE = Duration(MINUTE, HORIZON)
DEFAULT_SINCE = "7d"


def _since(text: str) -> float:
    try:
        return REPORT_SINCE(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
            default=DEFAULT_KEEP,
            metavar="K",
            help="unused versions kept per family, newest first, besides those any service's "
            f"spec or previous spec uses (default {DEFAULT_KEEP})",
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
    configure_logging(settings.log.log_format, settings.log.log_level)
    return App(settings, _engine_factory(settings), runbook_settings=args.runbook_setting).run()


def _failed(args: argparse.Namespace, message: str, code: int = EXIT_FAILED) -> int:
    """An error, said the same way by every command: one line on stderr, and with --json one
    object on stdout (what a script reads), then the command's exit code."""
    print(message, file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": message, "exit_code": code}))
    return code


def cmd_check(args: argparse.Namespace) -> int:
    from swarm_medic.commands.check import diagnose, render_json, render_table

    settings = _settings(args)
    runbooks = registry.load(registry.default_dirs(settings.runbooks.runbooks_dir))
    runbooks.configure(args.runbook_setting, os.environ)
    try:
        engine = _engine_factory(settings)()
        report = diagnose(engine, settings, runbooks, time.time())
    except SwarmMedicError as exc:
        return _failed(args, f"swarm-medic check: could not check: {exc}")
    (render_json if args.json else render_table)(report, sys.stdout)
    if report.decisions:
        return EXIT_FINDINGS
    # a runbook that failed means the check is incomplete
    return EXIT_FAILED if report.errors else EXIT_OK


def cmd_pause(args: argparse.Namespace) -> int:
    from swarm_medic.commands.pause import set_pause

    settings = _settings(args)
    now = time.time()
    until = None if args.pause_for is None else now + args.pause_for
    pause = Pause(reason=args.reason, at=now, by=_who(), until=until)
    try:
        switched = set_pause(_engine_factory(settings)(), settings.safety.ledger_name, pause, now)
    except SwarmMedicError as exc:
        return _failed(args, f"swarm-medic pause: not paused: {exc}")
    if switched.before is not None:
        print(f"replaces: {switched.before.describe()}")
    print(f"{pause.describe()}\nevery instance stops acting at its next scan")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from swarm_medic.commands.pause import set_pause

    settings = _settings(args)
    now = time.time()
    try:
        switched = set_pause(_engine_factory(settings)(), settings.safety.ledger_name, None, now)
    except SwarmMedicError as exc:
        return _failed(args, f"swarm-medic resume: not resumed: {exc}")
    if switched.before is None:
        print("not paused: nothing to resume")
    else:
        print(f"resumed; was {switched.before.describe()}")
    return 0


def _approver() -> str:
    sudo = os.environ.get("SUDO_USER", "").strip()
    return f"{sudo}@{socket.gethostname()}" if sudo else _who()


def cmd_approve(args: argparse.Namespace) -> int:
    from swarm_medic.commands.approve import approve, pending, render

    settings = _settings(args)
    now = time.time()
    name = settings.safety.ledger_name
    if args.list:
        try:
            doc = _engine_factory(settings)().read_ledger(name)
        except SwarmMedicError as exc:
            return _failed(args, f"swarm-medic approve: could not read the ledger: {exc}")
        print("\n".join(render(pending(Ledger.from_doc(doc), now))))
        return EXIT_OK
    if not args.incident:
        return _failed(args, "swarm-medic approve: give an INCIDENT id, or --list", EXIT_USAGE)
    approval = Approval(args.incident, args.by or _approver(), now, now + args.ttl)
    try:
        done = approve(_engine_factory(settings)(), name, approval, now)
    except SwarmMedicError as exc:
        return _failed(args, f"swarm-medic approve: not approved: {exc}")
    r = done.record
    if done.replaced is not None:
        print(f"replaces: {done.replaced.describe()}")
    what = r.proposed or "the action the leader proposes for it"
    print(
        f"incident {r.id} ({r.runbook}{', service ' + r.service if r.service else ''}): "
        f"{approval.describe()}\n"
        f"the leader applies {what} once, at its next scan, through every other gate "
        "(cooldown, budget, circuit breaker, pause, max-concurrent, storm); "
        "after the expiry it applies nothing"
    )
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from swarm_medic.commands import report

    settings = _settings(args)
    name = settings.safety.ledger_name
    try:
        worth, exists = report.read(_engine_factory(settings)(), name, time.time(), args.since)
    except SwarmMedicError as exc:
        return _failed(args, f"swarm-medic report: could not read the ledger: {exc}")
    (report.render_json if args.json else report.render_table)(
        worth, sys.stdout, name, exists=exists
    )
    # records that could not be read: the figures are incomplete, as a check with a failed
    # runbook is (said in the output; a pruned history is not an error: it is the bound)
    return EXIT_FAILED if worth.problems else EXIT_OK


def cmd_rollout(args: argparse.Namespace) -> int:
    from swarm_medic.commands import rollout

    settings = _settings(args)
    operands = [v for v in (getattr(args, k, None) for k in ROLLOUT_OPERANDS) if isinstance(v, str)]
    code = rollout.run(
        args.rollout_what,
        operands,
        _engine_factory(settings),
        keep=args.keep,
        as_json=args.json,
        out=sys.stdout,
        err=sys.stderr,
        key=settings.probes.secret.encode(),  # a secret's version is named by a keyed digest
    )
    # rollout says its error itself (a line, and "ok": false in its --json document); its 1
    # is every command's "could not do it"
    return EXIT_FAILED if code == 1 else code


ROLLOUT_OPERANDS = ("rollout_service", "rollout_target", "rollout_file")


def cmd_uninstall(args: argparse.Namespace) -> int:
    from swarm_medic.commands import uninstall

    settings = _settings(args)
    try:
        engine = _engine_factory(settings)()
    except SwarmMedicError as exc:
        return _failed(args, f"swarm-medic uninstall: {exc}")
    code = uninstall.run(
        engine, settings.safety.ledger_name, dry_run=args.list_only, out=sys.stdout
    )
    return EXIT_FAILED if code else EXIT_OK


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


def _standing(args: argparse.Namespace, name: str, runbooks: registry.Registry) -> str:
    """What the runbook holds per service in this swarm now (stuck-task: each service's
    thresholds and where they came from), read as `check` reads it; said if it cannot be."""
    from swarm_medic.commands.check import diagnose

    try:
        settings = _settings(args)
        report = diagnose(_engine_factory(settings)(), settings, runbooks, time.time())
    except SwarmMedicError as exc:
        return f"\nPer service: cannot read the swarm here ({exc}).\n"
    lines = dict(report.standing).get(name, ())
    if not lines:
        return "\nPer service: no service in this swarm.\n"
    width = max(len(n) for n, _ in lines)
    return "\nPer service, in this swarm now:\n" + "".join(
        f"  {n.ljust(width)}  {text}\n" for n, text in lines
    )


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
        if rb.standing_fn is not None:
            print(_standing(args, rb.name, runbooks), end="")
        return 0
    width = max((len(n) for n in runbooks.runbooks), default=0)
    for rb in sorted(runbooks.runbooks.values(), key=lambda r: r.name):
        print(f"{rb.name.ljust(width)}  {rb.summary}")
    for e in runbooks.errors:
        print(f"error: {e.path}: {e.message}", file=sys.stderr)
    return EXIT_FAILED if runbooks.errors else EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "check": cmd_check,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "approve": cmd_approve,
    "report": cmd_report,
    "rollout": cmd_rollout,
    "runbooks": cmd_runbooks,
    "uninstall": cmd_uninstall,
}


def _main(argv: Sequence[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        sys.stderr.write(exc.usage)
        return _failed(argparse.Namespace(json="--json" in argv), str(exc), EXIT_USAGE)
    try:
        return COMMANDS[args.command](args)
    except SettingsError as exc:
        return _failed(args, f"swarm-medic: wrong setting: {exc}", EXIT_USAGE)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            code = _main(sys.argv[1:] if argv is None else list(argv))
        finally:  # --help and --version leave by SystemExit: their output is flushed here too
            sys.stdout.flush()  # a closed pipe shows here at the latest, not at exit
    except BrokenPipeError:
        # The reader has gone (`swarm-medic runbooks | head -1`): stop quietly, as every Unix
        # tool does. Later writes (and Python's own flush at exit) go nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
