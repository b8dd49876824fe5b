"""Property tests: hostile or broken input never crashes the medic (hypothesis, profile "ci").

Every reader of outside input is fed arbitrary JSON-like values: engine objects and events,
the ledger's labels, settings from flags, variables and files, service labels. Each answers
with a value or its own error, never anything else. The profile (tests/conftest.py) is fixed
and derandomised, so a run that passes here passes everywhere.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import abc
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType, UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from runbooks import stuck_task
from runbooks.stuck_task import DEFAULT_STUCK_AFTER
from swarm_medic.config import load as load_settings
from swarm_medic.core import ledger, reach, records, worth
from swarm_medic.core.errors import SettingsError
from swarm_medic.core.model import EngineContainer, Event, LedgerDoc, Service
from swarm_medic.core.parsers import Count, Duration
from swarm_medic.core.scope import ENABLE_LABEL, SELF_LABEL, scope_reason
from swarm_medic.core.settings import SPECS, SafetySettings, Settings, env_name
from swarm_medic.pipeline import registry
from swarm_medic.pipeline.watch import Watcher
from swarm_medic.swarm import mapping, wire
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics

# Keys the mapping reads, so generated objects reach deep into its branches.
API_KEYS = [
    "ID",
    "Id",
    "Spec",
    "Description",
    "Status",
    "ManagerStatus",
    "Version",
    "Index",
    "UpdateStatus",
    "Endpoint",
    "PreviousSpec",
    "UpdatedAt",
    "Labels",
    "Role",
    "Availability",
    "Mode",
    "Replicated",
    "Replicas",
    "Global",
    "ReplicatedJob",
    "GlobalJob",
    "TaskTemplate",
    "ContainerSpec",
    "Image",
    "Placement",
    "Constraints",
    "MaxReplicas",
    "Resources",
    "Reservations",
    "NanoCPUs",
    "MemoryBytes",
    "EndpointSpec",
    "Ports",
    "TargetPort",
    "VirtualIPs",
    "Addr",
    "NetworkID",
    "NetworksAttachments",
    "Network",
    "Addresses",
    "Ingress",
    "Name",
    "ContainerStatus",
    "ExitCode",
    "ContainerID",
    "Slot",
    "NodeID",
    "ServiceID",
    "State",
    "Timestamp",
    "CreatedAt",
    "DesiredState",
    "Message",
    "Err",
    "Swarm",
    "LocalNodeState",
    "ControlAvailable",
    "ServerVersion",
    "NetworkSettings",
    "Networks",
    "IPAddress",
    "Type",
    "Action",
    "Actor",
    "Attributes",
    "timeNano",
    "time",
    "Hostname",
    "Platform",
    "Engine",
    "OS",
    "Architecture",
    "Leader",
    "StartedAt",
    "CompletedAt",
    "ForceUpdate",
    "RepoTags",
    "RepoDigests",
    "Created",
    "Size",
    "Containers",
    "ImageID",
    "Names",
    "LogPath",
    "HostConfig",
    "LogConfig",
    "Config",
    "max-size",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()  # NaN and infinities included
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "2024-01-02T03:04:05.123456789Z",
            "0001-01-01T00:00:00Z",
            "2024-13-45T99:99:99+25:00",
            "9999-12-31T23:59:59-14:00",
            "10.0.0.1/24",
        ]
    )
)
keys = st.sampled_from(API_KEYS) | st.text(max_size=8)
json_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=12,
)
api_objects = st.dictionaries(keys, json_like, max_size=6)
anything = json_like | api_objects


def engine_container_from_api(raw: Any) -> EngineContainer:
    """A prune's container: the same hostile object as its listing and as its inspect."""
    return mapping.engine_container_from_api(raw, raw)


READERS: list[Callable[[Any], object]] = [
    mapping.node_from_api,
    mapping.service_from_api,
    mapping.task_from_api,
    mapping.info_from_api,
    mapping.container_from_api,
    mapping.event_from_api,
    mapping.image_from_api,
    engine_container_from_api,
]


# --- engine objects ----------------------------------------------------------------------


def conforms(value: object, hint: Any) -> bool:
    """`value` has the type `hint` declares, down to every field of a model value: a reader that
    let a list through into a str field would break whoever reads the field, not the reader."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, UnionType):
        return any(conforms(value, a) for a in args)
    if origin is tuple:
        each = items(value, args)
        return each is not None and all(conforms(v, t) for v, t in each)
    if origin is abc.Mapping:
        return isinstance(value, abc.Mapping) and all(
            conforms(k, args[0]) and conforms(v, args[1]) for k, v in value.items()
        )
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        fields = get_type_hints(hint)
        return isinstance(value, hint) and all(
            conforms(getattr(value, f.name), fields[f.name]) for f in dataclasses.fields(hint)
        )
    numeric = hint in (int, float)  # bool is an int to isinstance, never a number to a reader
    kinds = (int, float) if hint is float else hint
    return isinstance(value, kinds) and not (numeric and isinstance(value, bool))


def items(value: object, args: tuple[Any, ...]) -> list[tuple[object, Any]] | None:
    """Each item of `value` with the type tuple[`args`] gives it; None when it cannot be one."""
    if not isinstance(value, tuple):
        return None
    types = args[:1] * len(value) if args[1:] == (Ellipsis,) else args
    return list(zip(value, types, strict=True)) if len(types) == len(value) else None


# What a reader keeps of the object it read, so the value is that object and not a stand-in.
KEPT: dict[str, Callable[[Any, Any], bool]] = {
    "node_from_api": lambda raw, v: v.id == raw["ID"],
    "service_from_api": lambda raw, v: v.id == raw["ID"],
    "task_from_api": lambda raw, v: v.id == raw["ID"],
    "container_from_api": lambda raw, v: v.id == raw["Id"],
    "image_from_api": lambda raw, v: v.id == raw["Id"],
    "engine_container_from_api": lambda raw, v: v.id == raw["Id"],
    "event_from_api": lambda raw, v: (v.type, v.action) == (raw["Type"], raw["Action"]),
}


@pytest.mark.parametrize("reader", READERS, ids=lambda f: f.__name__)
@given(raw=anything)
# a list where a number belongs, deeper than the generated objects often reach
@example(raw={"ID": "x", "Description": {"Resources": {"NanoCPUs": [1]}}})
@example(raw={"ID": "x", "Spec": {"Mode": {"Replicated": {"Replicas": [1]}}}})
@example(raw={"ID": "x", "Version": {"Index": [1]}})
def test_an_engine_object_maps_to_a_value_or_a_value_error(
    reader: Callable[[Any], object], raw: object
) -> None:
    try:
        value = reader(raw)
    except ValueError:
        return
    assert conforms(value, get_type_hints(reader)["return"]), value
    kept = KEPT.get(reader.__name__)
    assert kept is None or kept(raw, value), value


@pytest.mark.parametrize("reader", READERS[:3] + READERS[4:5], ids=lambda f: f.__name__)
@given(raw=json_like | st.lists(anything, max_size=3))
def test_map_each_never_raises(reader: Callable[[Any], Any], raw: object) -> None:
    bad: list[str] = []
    out = mapping.map_each(raw, reader, "object", bad)
    assert isinstance(out, tuple)
    assert len(out) + len(bad) == (len(raw) if isinstance(raw, list) else 1)


# --- events -------------------------------------------------------------------------------


@given(raw=anything)
def test_the_watcher_handles_anything(raw: object) -> None:
    seen: list[Event] = []
    journal = Journal(Metrics(CollectorRegistry()))
    w = Watcher(FakeEngine(), journal, seen.append, clock=lambda: 1_700_000_000.0)
    w.last_nano = 1_700_000_000 * 10**9
    line = json.dumps(raw).encode()  # a line of the engine's stream, decoded at the boundary
    w.handle(wire.decode_event(line))
    w.handle(wire.decode_event(line))  # the same event twice (a replay) is never handled twice
    assert len(seen) <= 1


# --- the ledger ---------------------------------------------------------------------------

times = st.floats() | st.integers() | st.integers(min_value=0, max_value=4_200_000_000)
entry_like = st.fixed_dictionaries(
    {},
    optional={
        "a": st.lists(st.lists(times | st.text(max_size=10), max_size=3), max_size=5) | json_like,
        "f": st.integers() | json_like,
        "u": times | json_like,
        "r": st.text(max_size=30) | json_like,
    },
)
label_values = (
    st.text(max_size=200)
    | st.builds(ledger.encode, st.builds(ledger.History))
    | entry_like.map(json.dumps)  # NaN and infinities come out as NaN, Infinity
)


def _finite(h: ledger.History) -> None:
    assert all(math.isfinite(t) for t, _ in h.actions)
    assert math.isfinite(h.open_until)
    assert h.failures_in_row >= 0


@given(text=label_values | json_like)
def test_ledger_decode_is_a_finite_history_or_its_own_error(text: object) -> None:
    try:
        h = ledger.decode(text)
    except ledger.LedgerEntryError:
        return
    _finite(h)


@given(
    labels=st.dictionaries(
        st.builds(lambda s: ledger.PREFIX + s, st.text(max_size=8)) | st.text(max_size=20),
        label_values,
        max_size=6,
    )
)
def test_ledger_from_doc_never_raises_and_never_holds_a_non_finite_number(
    labels: dict[str, str],
) -> None:
    led = ledger.Ledger.from_doc(LedgerDoc("cfg", 1, MappingProxyType(labels)))
    for h in led.services.values():
        _finite(h)
    assert set(led.problems) == led.unreadable
    assert not set(led.services) & led.unreadable
    led.labels(1_700_000_000.0)  # writing back never raises either


# --- the incidents' record in the ledger -----------------------------------------------------

record_like = st.fixed_dictionaries(
    {},
    optional={k: times | st.text(max_size=10) | json_like for k in ("f", "c", "a", "la", "h", "t")}
    | {k: st.integers() | json_like for k in ("x", "nh")}
    | {k: st.text(max_size=12) | json_like for k in ("rb", "k", "s", "n")},
)
record_values = (
    st.text(max_size=200)
    | st.builds(
        records.encode,
        st.builds(
            records.IncidentRecord,
            st.text(max_size=8),
            st.text(min_size=1, max_size=8),
            st.floats(min_value=0, max_value=4e9),
        ),
    )
    | record_like.map(json.dumps)
)


@given(
    labels=st.dictionaries(
        st.builds(lambda s: records.RECORD_PREFIX + s, st.text(max_size=8))
        | st.just(records.PRUNED_LABEL)
        | st.text(max_size=20),
        record_values | json_like,
        max_size=6,
    )
)
def test_records_read_as_finite_values_or_said_problems_and_the_report_never_raises(
    labels: dict[str, Any],
) -> None:
    led = ledger.Ledger.from_doc(LedgerDoc("cfg", 1, MappingProxyType(labels)))
    got = led.records()
    for r in got.by_id.values():
        times_of = (r.found, r.closed, r.acted, r.last_acted, r.healed, r.touched)
        assert all(t is None or math.isfinite(t) for t in times_of)
        assert r.runbook and r.actions >= 0 and r.not_held >= 0
    assert not set(got.by_id) & set(got.problems)
    worth.compute(got, 1_700_000_000.0, 7 * 86400.0)
    led.with_records([records.Closed(rid, 1_700_000_000.0) for rid in got.by_id]).labels(
        1_700_000_000.0
    )


# --- settings -----------------------------------------------------------------------------

# One property per setting, over ~50 settings: a setting's parser is one of a handful of kinds
# (Duration, Count, choice, bool, URL lists...), so 30 texts each still meet every kind
# thousands of times per run, in a third of the time 100 each took (≈110 s of a CI's 200 s).
PER_SETTING = settings(max_examples=30)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@PER_SETTING
@given(text=st.text(max_size=40) | st.from_regex(r"\A\s*\d{1,400}(\.\d{1,400})?\s*(ms|s|m|h)?\Z"))
def test_every_setting_parses_to_a_value_in_range_or_a_value_error(spec: Any, text: str) -> None:
    try:
        value = spec.parse(text)
    except ValueError:
        return
    if isinstance(spec.parse, Duration):
        assert spec.parse.low <= value <= spec.parse.high
    if isinstance(spec.parse, Count):
        assert spec.parse.low <= value <= spec.parse.high


RUNBOOK_SETTINGS = [
    (rb.name, s) for rb in registry.load([registry.builtin_dir()]) for s in rb.settings
]


@pytest.mark.parametrize(("runbook", "spec"), RUNBOOK_SETTINGS, ids=lambda x: getattr(x, "name", x))
@PER_SETTING
@given(text=st.text(max_size=40) | st.from_regex(r"\A\s*\d{1,400}(\.\d{1,400})?\s*(ms|s|m|h)?\Z"))
def test_every_runbook_setting_parses_to_a_value_in_range_or_a_value_error(
    runbook: str, spec: Any, text: str
) -> None:
    try:
        value = spec.parse(text)
    except ValueError:
        return
    if isinstance(spec.parse, Duration):
        assert spec.parse.low <= value <= spec.parse.high
    if isinstance(spec.parse, Count):
        assert spec.parse.low <= value <= spec.parse.high
    if (runbook, spec.name) == ("stuck-task", "after"):
        assert all(1.0 <= v <= 30 * 86400 for v in value.values())
        assert set(value) == set(DEFAULT_STUCK_AFTER)


ENV_NAMES = [env_name(s) for s in SPECS]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    env=st.dictionaries(
        st.sampled_from(ENV_NAMES) | st.builds(lambda s: "SWARM_MEDIC_" + s, st.text(max_size=6)),
        st.text(max_size=30),
        max_size=6,
    ),
    flags=st.dictionaries(st.sampled_from([s.name for s in SPECS]), st.text(max_size=30)),
    files=st.dictionaries(st.sampled_from(ENV_NAMES), st.binary(max_size=60), max_size=3),
)
def test_settings_load_is_settings_or_a_settings_error(
    tmp_path: Path, env: dict[str, str], flags: dict[str, str], files: dict[str, bytes]
) -> None:
    env = dict(env)
    for i, (name, data) in enumerate(files.items()):
        path = tmp_path / f"value-{i}"
        path.write_bytes(data)
        env[name + "_FILE"] = str(path)
    flags_in: dict[str, str | None] = dict(flags)
    try:
        s = load_settings(flags_in, env)
    except SettingsError as exc:
        assert str(exc)
        return
    assert isinstance(s, Settings)


# --- service labels -----------------------------------------------------------------------

LABEL_KEYS = [
    ENABLE_LABEL,
    SELF_LABEL,
    reach.PORT_LABEL,
    "swarm-medic.stuck-after",
    *(f"swarm-medic.stuck-after.{s}" for s in DEFAULT_STUCK_AFTER),
]


@given(
    labels=st.dictionaries(
        st.sampled_from(LABEL_KEYS) | st.text(max_size=10),
        st.text(max_size=30) | st.from_regex(r"\A\s*\d{1,400}\s*(ms|s|m|h)?\Z"),
        max_size=6,
    ),
    scope=st.sampled_from(["opt-in", "all"]),
)
def test_service_labels_never_raise(labels: Mapping[str, str], scope: str) -> None:
    svc = Service("svc1", "web", 1, labels=MappingProxyType(dict(labels)), target_ports=(80,))
    scope_reason(svc, SafetySettings(scope=scope))
    port = reach.probe_port(svc)
    assert port is None or 0 < port < 65536
    limits = stuck_task.thresholds(svc, dict(DEFAULT_STUCK_AFTER))
    assert all(1.0 <= v.seconds <= 30 * 86400 for v in limits.values())
