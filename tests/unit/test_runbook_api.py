"""The public runbook API (swarm_medic.runbook): what a runbook file declares and is given.

The example of the README's guide (examples/runbooks/) is loaded from its folder, as an
operator's --runbooks-dir would be, and run against snapshots built here.
"""

from __future__ import annotations

import ast
import textwrap
import warnings
from pathlib import Path
from types import ModuleType

import pytest

import swarm_medic.runbook as api
from runbooks.stuck_task import DEFAULT_STUCK_AFTER, STUCK_AFTER
from swarm_medic.cli import main
from swarm_medic.config import load as load_settings
from swarm_medic.core.errors import SettingsError
from swarm_medic.core.model import Service, Snapshot, Target
from swarm_medic.core.reach import Reachability
from swarm_medic.core.runbook import Context, Runbook, Sightings, context
from swarm_medic.core.settings import ProbeSettings, Settings
from swarm_medic.pipeline import match, registry
from swarm_medic.runbook import helpers
from tests import builders as build
from tests.builders import NOW

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "runbooks"
BUILTIN = registry.load([registry.builtin_dir()])
SECRET = "s3cr3t-" + "x" * 40


def snap(*services: Service) -> Snapshot:
    manager = build.node("n1", hostname="manager-1", role="manager", leader=True)
    return build.snapshot(nodes=[manager], services=services)


def write(tmp_path: Path, name: str, body: str) -> registry.Registry:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    return registry.load([tmp_path])


# --- the README's example, loaded from its folder ----------------------------------------------


def test_the_example_runbook_loads_and_finds_a_service_left_at_zero() -> None:
    reg = registry.load([EXAMPLES])
    assert reg.errors == []
    rb = reg.runbooks["replicas-zero"]
    assert rb.plan_fn is None and not rb.needs
    assert rb.values.grace == 3600.0
    zero, one = Service("s0", "batch", 3, replicas=0), Service("s1", "web", 4, replicas=1)
    sightings = Sightings()

    def scan(at: float, registry_: registry.Registry = reg) -> match.MatchResult:
        ctx = context(snap(zero, one), at, Settings(), sightings=sightings)
        found = match.run(registry_, ctx)
        sightings.end_scan()
        return found

    assert scan(NOW).findings == ()  # the clock starts at the first sighting
    (f,) = scan(NOW + 3600).findings
    assert (f.key, f.service_name, f.target) == (
        "replicas-zero:s0",
        "batch",
        Target.for_service("s0"),
    )
    assert f.summary == "batch has been scaled to 0 for 3600s"
    # plan is absent: report only
    planned, failures = match.plan_all(reg.runbooks, [f], context(snap(zero), NOW, Settings()))
    assert planned == [(f, None)] and failures == []

    reg.configure(["replicas-zero.grace=2h"], {})
    assert scan(NOW + 3700).findings == ()


def test_the_example_is_a_short_file_that_imports_only_the_api() -> None:
    text = (EXAMPLES / "replicas_zero.py").read_text()
    assert len(text.splitlines()) <= 40
    assert _swarm_medic_imports(text) == {"swarm_medic.runbook"}
    code = text.split('"""\n\n', 1)[1]  # the README shows it all, but a shorter docstring
    assert code in (ROOT / "README.md").read_text()


# --- built-in runbooks use only the public API ------------------------------------------------


def _swarm_medic_imports(text: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.split(".")[0] == "swarm_medic"}


@pytest.mark.parametrize("path", sorted(registry.builtin_dir().glob("*.py")), ids=lambda p: p.name)
def test_builtin_runbooks_import_only_the_public_api(path: Path) -> None:
    public = {"swarm_medic.runbook", "swarm_medic.runbook.helpers"}
    assert _swarm_medic_imports(path.read_text()) <= public


@pytest.mark.parametrize("module", [api, helpers], ids=["contract", "helpers"])
def test_everything_in_all_exists(module: ModuleType) -> None:
    names: list[str] = vars(module)["__all__"]
    assert all(hasattr(module, name) for name in names)
    assert len(set(names)) == len(names)


# The API as it was before the helpers had a module of their own.
BEFORE_THE_SPLIT = (
    "ALERTS",
    "DAY",
    "DEFAULT_KEEP",
    "HOUR",
    "MINUTE",
    "PRE_RUNNING_STATES",
    "PROBES",
    "Action",
    "ActionKind",
    "Alert",
    "Alerts",
    "Cell",
    "Container",
    "Context",
    "Count",
    "Duration",
    "Finding",
    "Miss",
    "Node",
    "Probes",
    "Published",
    "Reachability",
    "Service",
    "Setting",
    "Severity",
    "Snapshot",
    "Stored",
    "Target",
    "TargetKind",
    "Task",
    "UpdateStatus",
    "Values",
    "VersionFamily",
    "choice",
    "fitting_nodes",
    "force_update",
    "parse_bool",
    "parse_duration",
    "placement_misses",
    "probe_port",
    "published_targets",
    "remove_orphan",
    "replace_task",
    "resume_update",
    "retry_update",
    "rollback",
    "running",
    "running_ips",
    "stale_versions",
    "summarise",
)


def test_the_contract_and_the_helpers_split_the_api_and_old_imports_still_work() -> None:
    assert not set(api.__all__) & set(helpers.__all__)
    assert set(BEFORE_THE_SPLIT) <= {*api.__all__, *helpers.__all__}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        namespace: dict[str, object] = {}
        exec(f"from swarm_medic.runbook import {', '.join(BEFORE_THE_SPLIT)}", namespace)  # noqa: S102
    # every helper there was before the split warns (helpers added since never lived there)
    assert {str(w.message).split()[1] for w in caught} == set(helpers.__all__) & set(
        BEFORE_THE_SPLIT
    )
    assert all(w.category is DeprecationWarning for w in caught)
    assert namespace["running"] is helpers.running
    with pytest.raises(ImportError):
        exec("from swarm_medic.runbook import nothing_of_the_kind", {})  # noqa: S102


def test_the_report_only_builtins_have_no_plan() -> None:
    report_only = {rb.name for rb in BUILTIN if rb.plan_fn is None}
    assert report_only == {
        "clock-skew",
        "crash-loop",
        "dead-vip",
        "image-on-some-nodes",
        "ip-exhaustion",
        "manager-quorum",
        "swarm-certificates",
        "node-down",
        "overlay-mtu",
        "published-port",
        "repeated-rejection",
        "stale-config-versions",
        "stale-dns",
    }


# --- the framework names the findings ----------------------------------------------------------

NEW_STYLE = '''
    """Finds services at zero replicas, after a grace; written the short way."""

    from swarm_medic.runbook import Finding

    NAME = "zero"

    def detect(ctx):
        for s in ctx.snapshot.services:
            if s.replicas == 0 and ctx.now - ctx.since(s.id) >= 60:
                yield Finding.for_service(s, f"{s.name} at zero", "zero")
'''

OLD_STYLE = '''
    """Finds services at zero replicas, after a grace; written the long way."""

    from swarm_medic.runbook import Finding, Target

    NAME = "zero"

    def detect(ctx):
        for s in ctx.snapshot.services:
            if s.replicas == 0 and ctx.now - ctx.since(f"{NAME}:{s.id}") >= 60:
                yield Finding(runbook=NAME, key=f"{NAME}:{s.id}", summary=f"{s.name} at zero",
                              cause="zero", service_id=s.id, service_name=s.name,
                              target=Target.for_service(s.id))
'''


@pytest.mark.parametrize("body", [NEW_STYLE, OLD_STYLE], ids=["short", "long"])
def test_a_runbook_written_either_way_makes_the_same_finding_and_sightings(
    tmp_path: Path, body: str
) -> None:
    reg = write(tmp_path, "zero", body)
    assert reg.errors == []
    sightings = Sightings()
    s = snap(Service("s0", "batch", 3, replicas=0))
    assert match.run(reg, context(s, NOW, Settings(), sightings=sightings)).findings == ()
    assert sightings.held() == {"zero:s0"}  # what verify reads: the finding's own key
    (f,) = match.run(reg, context(s, NOW + 60, Settings(), sightings=sightings)).findings
    assert f == api.Finding(
        "zero",
        "zero:s0",
        "batch at zero",
        "zero",
        service_id="s0",
        service_name="batch",
        target=Target.for_service("s0"),
    )


def test_the_constructors_fill_ids_names_and_target_and_any_field_can_be_given() -> None:
    svc = build.service("s1", name="web")
    task = build.task("t1", sid="s1", node_id="n2")
    node = build.node("n2", state="down")
    assert api.Finding.for_task(task, svc, "sum", "cause", node_ids=("n1", "n2")) == api.Finding(
        "",
        "t1",
        "sum",
        "cause",
        service_id="s1",
        service_name="web",
        task_ids=("t1",),
        node_ids=("n1", "n2"),
        target=Target.for_task("t1", "n2"),
    )
    assert api.Finding.for_node(node, "sum", "down", key="n2:x") == api.Finding(
        "", "n2:x", "sum", "down", node_ids=("n2",), target=Target.for_node("n2")
    )
    gone = api.Finding.for_service("s9", "sum", "cause", severity=api.Severity.CRITICAL)
    assert (gone.key, gone.service_id, gone.service_name, gone.target, gone.severity) == (
        "s9",
        "s9",
        "s9",
        Target.for_service("s9"),
        api.Severity.CRITICAL,
    )
    alert = api.Finding.for_service(svc, "sum", "alert", target=Target.for_alert("High"))
    assert alert.target == Target.for_alert("High")
    whole = api.Finding.about("net1:full", "sum", "full", node_ids=("n1",))
    assert (whole.runbook, whole.key, whole.service_id, whole.target) == ("", "net1:full", "", None)


def test_a_detect_that_yields_something_else_is_that_runbooks_failure(tmp_path: Path) -> None:
    reg = write(
        tmp_path,
        "odd",
        '''
        """Yields a string."""
        NAME = "odd"
        def detect(ctx):
            yield "odd:s1"
        ''',
    )
    found = match.run(reg, context(snap(), NOW, Settings()))
    assert found.findings == ()
    (failure,) = found.failures
    assert failure.runbook == "odd"
    assert failure.error == "TypeError: detect yielded str, not a Finding"


# --- plan absent, needs not met ---------------------------------------------------------------

FINDS_EVERY_SERVICE = '''
    """Finds every service."""

    from swarm_medic.runbook import PROBES, Finding

    NAME = "{name}"
    {needs}

    def detect(ctx):
        {touch}
        for s in ctx.snapshot.services:
            yield Finding(NAME, f"{{NAME}}:{{s.id}}", "seen", "seen", service_id=s.id,
                          actionable=True)
'''


def test_a_runbook_without_plan_is_report_only(tmp_path: Path) -> None:
    reg = write(tmp_path, "seer", FINDS_EVERY_SERVICE.format(name="seer", needs="", touch=""))
    assert reg.errors == []
    ctx = context(snap(Service("s1", "web", 1)), NOW, Settings())
    found = match.run(reg, ctx)
    planned, failures = match.plan_all(reg.runbooks, found.findings, ctx)
    assert [a for _, a in planned] == [None] and failures == []


def test_a_runbook_whose_needs_are_not_met_is_skipped_not_failed(tmp_path: Path) -> None:
    body = FINDS_EVERY_SERVICE.format(
        name="prober", needs="NEEDS = (PROBES,)", touch="assert ctx.probes.reach is not None"
    )
    reg = write(tmp_path, "prober", body)
    assert reg.errors == []
    assert reg.runbooks["prober"].needs == {"probes"}
    s = snap(Service("s1", "web", 1))
    without = match.run(reg, context(s, NOW, Settings()))  # as `check`, or not the brain
    assert without.findings == () and without.failures == ()
    with_probes = match.run(reg, context(s, NOW, Settings(), reach=Reachability()))
    assert [f.key for f in with_probes.findings] == ["prober:s1"]


def test_asking_for_probes_without_declaring_them_fails_clearly() -> None:
    with pytest.raises(LookupError, match="NEEDS"):
        _ = context(snap(), NOW, Settings()).probes


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('NEEDS = ("telepathy",)', "NEEDS 'telepathy': known are alerts, probes"),
        ('NEEDS = "probes"', "NEEDS must be a tuple"),
        ('SETTINGS = (Setting("grace", Duration(1, 10), "1h", "h"),)', "default '1h' is not valid"),
        ('SETTINGS = (Setting("get", Duration(1, 10), "5", "h"),)', "setting name 'get' is taken"),
        ('SETTINGS = (Setting("my-key", Duration(1, 10), "5", "h"),)', "not a plain Python"),
        ("SETTINGS = ({'name': 'grace'},)", "SETTINGS holds dict"),
    ],
)
def test_a_bad_declaration_is_a_load_error_naming_it(
    tmp_path: Path, extra: str, message: str
) -> None:
    body = (
        '"""Bad."""\nfrom swarm_medic.runbook import Duration, Setting\nNAME = "bad"\n'
        f"{extra}\ndef detect(ctx):\n    return []\n"
    )
    (tmp_path / "bad.py").write_text(body)
    reg = registry.load([tmp_path])
    (err,) = reg.errors
    assert message in err.message and "bad" not in reg.runbooks


# --- runbook settings: declared, set, checked, isolated ----------------------------------------


def test_defaults_come_from_the_declaration() -> None:
    values = {rb.name: dict(rb.values) for rb in BUILTIN if rb.settings}
    assert values == {
        "clock-skew": {"warn": 1.0, "critical": 3600.0},
        "crash-loop": {"threshold": 3, "window": 600.0},
        "disk-pressure": {"high": 90, "low": 85, "critical": 97, "free": 1 << 30, "prune": False},
        "overlay-mtu": {"rounds": 3},
        "swarm-certificates": {
            "warn": 604800.0,
            "share": 20,
            "down_warn": 604800.0,
            "ca_warn": 2592000.0,
            "critical": 86400.0,
        },
        "image-on-some-nodes": {"threshold": 3, "window": 600.0},
        "ip-exhaustion": {"after": 30.0, "full": 90},
        "orphan-container": {"grace": 60.0},
        "paused-update": {"action": "rollback"},
        "repeated-rejection": {"threshold": 3, "window": 600.0},
        "stale-config-versions": {"keep": 3},
        "stale-dns": {"grace": 45.0},
        "stale-nodes": {"after": 86400.0, "action": "report"},
        "stuck-task": {"after": DEFAULT_STUCK_AFTER},
        "stuck-update": {"margin": 300.0, "action": "report"},
        "unbalanced": {"after": 300.0},
    }


def configured(flags: list[str], env: dict[str, str]) -> dict[str, Runbook]:
    reg = registry.load([registry.builtin_dir()])
    reg.configure(flags, env)
    return reg.runbooks


def test_env_form_and_flag_form() -> None:
    env = {
        "SWARM_MEDIC_RUNBOOK_STALE_DNS_GRACE": "2m",
        "SWARM_MEDIC_RUNBOOK_REPEATED_REJECTION_THRESHOLD": "5",
        "SWARM_MEDIC_SCAN_INTERVAL": "1s",  # the daemon's own: not a runbook's business
    }
    rbs = configured(["orphan-container.grace=5m", "stale-dns.grace=3m"], env)
    assert rbs["stale-dns"].values.grace == 180.0  # the flag wins over the environment
    assert rbs["repeated-rejection"].values.threshold == 5
    assert rbs["repeated-rejection"].values.window == 600.0  # untouched default
    assert rbs["orphan-container"].values.grace == 300.0
    assert rbs["stale-dns"].given["grace"] == ("--runbook-setting stale-dns.grace", "3m")


def test_the_last_flag_wins() -> None:
    rbs = configured(["paused-update.action=retry", "paused-update.action=rollback"], {})
    assert rbs["paused-update"].values.action == "rollback"


def test_stuck_after_merges_with_the_defaults() -> None:
    rbs = configured([], {"SWARM_MEDIC_RUNBOOK_STUCK_TASK_AFTER": "pending=30s, starting=2m"})
    expected = dict(DEFAULT_STUCK_AFTER) | {"pending": 30.0, "starting": 120.0}
    assert dict(rbs["stuck-task"].values.after) == expected
    assert DEFAULT_STUCK_AFTER["pending"] == 60.0  # the defaults themselves are not changed
    for state, limit in DEFAULT_STUCK_AFTER.items():
        assert STUCK_AFTER.low <= limit <= STUCK_AFTER.high, state


@pytest.mark.parametrize(
    ("flags", "env", "words"),
    [
        (["nosuch.grace=1m"], {}, ["no runbook named 'nosuch'", "stale-dns"]),
        (["stale-dns.grac=1m"], {}, ["'stale-dns' has no setting 'grac'", "its settings: grace"]),
        (["node-down.grace=1m"], {}, ["'node-down' has no setting", "declares no settings"]),
        (["stale-dns=1m"], {}, ["expected NAME.KEY=VALUE"]),
        (["stale-dns.grace"], {}, ["expected NAME.KEY=VALUE"]),
        ([], {"SWARM_MEDIC_RUNBOOK_STALE_DNS_GRAC": "1m"}, ["SWARM_MEDIC_RUNBOOK_STALE_DNS_GRAC"]),
        (
            ["stale-dns.grace=0"],
            {},
            [
                "stale-dns.grace='0'",
                "'stale-dns'",
                "'grace'",
                "SWARM_MEDIC_RUNBOOK_STALE_DNS_GRACE",
            ],
        ),
        (
            [],
            {"SWARM_MEDIC_RUNBOOK_STUCK_TASK_AFTER": "pending=0s"},
            ["SWARM_MEDIC_RUNBOOK_STUCK_TASK_AFTER='pending=0s'", "--runbook-setting stuck-task"],
        ),
        (
            [],
            {"SWARM_MEDIC_RUNBOOK_REPEATED_REJECTION_THRESHOLD": "1001"},
            ["'repeated-rejection'", "from 1 to 1000"],
        ),
        (["paused-update.action=undo"], {}, ["expected one of rollback, retry"]),
    ],
)
def test_a_wrong_runbook_setting_is_refused_naming_runbook_and_key(
    flags: list[str], env: dict[str, str], words: list[str]
) -> None:
    with pytest.raises(SettingsError) as err:
        configured(flags, env)
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("SWARM_MEDIC_STUCK_AFTER", "SWARM_MEDIC_RUNBOOK_STUCK_TASK_AFTER"),
        ("SWARM_MEDIC_PAUSED_UPDATE_ACTION", "SWARM_MEDIC_RUNBOOK_PAUSED_UPDATE_ACTION"),
        ("SWARM_MEDIC_REJECTION_THRESHOLD", "SWARM_MEDIC_RUNBOOK_REPEATED_REJECTION_THRESHOLD"),
        ("SWARM_MEDIC_REJECTION_WINDOW", "SWARM_MEDIC_RUNBOOK_REPEATED_REJECTION_WINDOW"),
        ("SWARM_MEDIC_DNS_GRACE", "SWARM_MEDIC_RUNBOOK_STALE_DNS_GRACE"),
        ("SWARM_MEDIC_ORPHAN_GRACE", "SWARM_MEDIC_RUNBOOK_ORPHAN_CONTAINER_GRACE"),
    ],
)
def test_a_moved_variable_says_where_it_went(old: str, new: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({}, {old: "1"})
    assert new in str(err.value)
    good = {"ACTION": "retry", "AFTER": "pending=1m"}.get(new.rsplit("_", 1)[1], "60")
    configured([], {new: good})  # and the new one is known


def test_runbook_variables_are_not_the_daemons_settings() -> None:
    env = {"SWARM_MEDIC_RUNBOOK_STALE_DNS_GRACE": "2m"}
    assert load_settings({}, env) == Settings()


def test_a_runbook_sees_its_own_settings_and_never_the_daemons(tmp_path: Path) -> None:
    seen: list[Context] = []
    reg = write(
        tmp_path,
        "spy",
        '''
        """Keeps what it was given."""
        from swarm_medic.runbook import Count, Setting
        NAME = "spy"
        SETTINGS = (Setting("limit", Count(9), "4", "a number"),)
        SEEN = []
        def detect(ctx):
            SEEN.append(ctx)
            return []
        ''',
    )
    reg.runbooks = {**reg.runbooks, **BUILTIN.runbooks}
    module_seen = reg.runbooks["spy"].detect_fn.__globals__["SEEN"]
    daemon = Settings(probes=ProbeSettings(secret=SECRET, probe_failures=7))
    ctx = context(snap(Service("s1", "web", 1)), NOW, daemon, reach=Reachability())
    assert match.run(reg, ctx).failures == ()
    seen.extend(module_seen)
    (given,) = seen
    assert dict(given.settings) == {"limit": 4}
    assert not any(isinstance(v, Settings) for v in vars(given).values())
    assert SECRET not in repr(given) and SECRET not in repr(vars(given))
    assert given.probes.failures == 7  # what the probes mean travels with them
    with pytest.raises(AttributeError, match="no runbook setting 'secret'"):
        _ = given.settings.secret
    with pytest.raises(AttributeError, match="read-only"):
        given.settings.limit = 5


# --- `swarm-medic runbooks NAME` ---------------------------------------------------------------


def test_runbooks_name_shows_the_settings_with_current_values(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARM_MEDIC_RUNBOOK_REPEATED_REJECTION_WINDOW", "30m")
    code = main(
        ["runbooks", "repeated-rejection", "--runbook-setting", "repeated-rejection.threshold=5"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("repeated-rejection  (")
    assert "Report only" in out
    assert "threshold=N  [env SWARM_MEDIC_RUNBOOK_REPEATED_REJECTION_THRESHOLD]" in out
    assert "default: 3\n      current: 5  (--runbook-setting repeated-rejection.threshold)" in out
    assert "current: 30m  (SWARM_MEDIC_RUNBOOK_REPEATED_REJECTION_WINDOW)" in out
    assert "how far back rejections count" in out


def test_runbooks_name_of_one_that_needs_probes_and_has_no_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["runbooks", "dead-vip"]) == 0
    out = capsys.readouterr().out
    assert "Needs: probes" in out and "Settings: none." in out


def test_a_wrong_runbook_setting_stops_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runbooks", "--runbook-setting", "stale-dns.grac=1m"]) == 2
    assert "has no setting 'grac'" in capsys.readouterr().err


def test_a_setting_for_a_runbook_file_that_did_not_load_says_why(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text('"""Mine."""\nNAME = "mine"\ndef detect(ctx:\n')
    reg = registry.load([tmp_path])
    with pytest.raises(SettingsError) as err:
        reg.configure(["mine.grace=1m"], {})
    assert "no runbook named 'mine'" in str(err.value)
    assert "mine.py: syntax error at line 3" in str(err.value)


def test_the_readme_lists_every_builtin_runbook_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for rb in BUILTIN:
        for s in rb.settings:
            assert f"| `{rb.name}.{s.name}` |" in readme, (rb.name, s.name)


def test_sightings_say_which_conditions_are_held_this_scan() -> None:
    s = Sightings()
    s.since("a", NOW)
    s.since("b", NOW)
    assert s.held() == {"a", "b"}  # what a fix's verification reads before end_scan
    s.end_scan()
    assert s.held() == frozenset()
    s.since("b", NOW + 5)
    assert s.held() == {"b"}
    assert s.since("b", NOW + 9) == NOW  # still the first sighting
