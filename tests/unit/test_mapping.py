"""swarm_medic.swarm.mapping: Engine API dictionaries -> model values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from swarm_medic.core.model import Resources, UpdateStatus
from swarm_medic.swarm import mapping
from swarm_medic.swarm.mapping import (
    container_from_api,
    event_from_api,
    info_from_api,
    node_from_api,
    parse_time,
    service_from_api,
    task_from_api,
)


def _utc(h: int, mi: int, s: int, us: int = 0) -> float:
    """Epoch seconds of a wall-clock time in UTC on 2026-11-26 (the day of all samples)."""
    return datetime(2026, 11, 26, h, mi, s, us, tzinfo=UTC).timestamp()


T0 = _utc(7, 58, 42, 229777)  # the instant of "2026-11-26T07:58:42.229777971Z"

# --- parse_time --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-11-26T07:58:42.229777971Z", T0, id="nanoseconds-utc"),
        pytest.param("2026-11-26T07:58:42Z", _utc(7, 58, 42), id="no-fraction"),
        pytest.param("2026-11-26T07:58:42.5Z", _utc(7, 58, 42, 500000), id="short-fraction"),
        pytest.param("2026-11-26T09:58:42.229777971+02:00", T0, id="plus-offset"),
        pytest.param("2026-11-26T02:58:42.229777971-05:00", T0, id="minus-offset"),
        pytest.param("2026-11-26T07:58:42+00:00", _utc(7, 58, 42), id="zero-offset"),
        pytest.param(
            "2026-11-26T09:58:42+02:00",
            _utc(7, 58, 42),
            id="offset-no-fraction",
        ),
    ],
)
def test_parse_time_rfc3339(text: str, expected: float) -> None:
    assert parse_time(text) == pytest.approx(expected, abs=1e-6)


def test_parse_time_known_epoch() -> None:
    # Independent of the helper above: a fixed, well-known instant.
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000.0


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("0001-01-01T00:00:00Z", id="go-zero-time"),
        pytest.param("", id="empty"),
        pytest.param(None, id="none"),
        pytest.param(1_700_000_000, id="int"),
        pytest.param(1.5, id="float"),
        pytest.param({"t": "2026-11-26T07:58:42Z"}, id="dict"),
    ],
)
def test_parse_time_unknown_is_zero(value: object) -> None:
    assert parse_time(value) == 0.0


# --- realistic Engine API objects ----------------------------------------------------------


def _task_obj(**over: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "ID": "t1abc",
        "Version": {"Index": 41},
        "CreatedAt": "2026-11-26T07:58:40.000000001Z",
        "ServiceID": "svc1",
        "Slot": 1,
        "NodeID": "",
        "Status": {
            "Timestamp": "2026-11-26T07:58:42.229777971Z",
            "State": "pending",
            "Message": "pending task scheduling",
            "Err": "no suitable node (scheduling constraints not satisfied on 1 node)",
        },
        "DesiredState": "running",
    }
    obj.update(over)
    return obj


def test_task_from_api_pending() -> None:
    t = task_from_api(_task_obj())
    assert t.id == "t1abc"
    assert t.service_id == "svc1"
    assert t.slot == 1
    assert t.node_id == ""
    assert t.state == "pending"
    assert t.desired_state == "running"
    assert t.message == "pending task scheduling"
    assert t.err == "no suitable node (scheduling constraints not satisfied on 1 node)"
    assert t.timestamp == pytest.approx(T0, abs=1e-6)
    assert t.created_at == pytest.approx(_utc(7, 58, 40), abs=1e-6)
    assert t.container_id == ""
    assert t.exit_code is None


def test_task_from_api_running_with_container() -> None:
    t = task_from_api(
        _task_obj(
            NodeID="node1",
            Status={
                "Timestamp": "2026-11-26T07:58:42Z",
                "State": "failed",
                "Message": "started",
                "Err": "task: non-zero exit (137)",
                "ContainerStatus": {"ContainerID": "c0ffee", "PID": 0, "ExitCode": 137},
            },
            DesiredState="shutdown",
        )
    )
    assert (t.node_id, t.state, t.desired_state) == ("node1", "failed", "shutdown")
    assert t.container_id == "c0ffee"
    assert t.exit_code == 137


def test_task_from_api_reads_the_image_of_its_own_spec() -> None:
    image = "registry.example.org/shop/web:9.9@sha256:" + "ab" * 32
    t = task_from_api(_task_obj(Spec={"ContainerSpec": {"Image": image}}))
    assert t.image == image
    assert task_from_api(_task_obj()).image == ""


def test_task_from_api_global_task_has_no_slot_and_defaults() -> None:
    obj = {"ID": "t2", "ServiceID": "svc1", "NodeID": "node1"}  # no Slot, no Status
    t = task_from_api(obj)
    assert t.slot is None
    assert t.state == "new"
    assert t.desired_state == ""
    assert t.timestamp == 0.0
    assert t.message == t.err == ""


def _service_obj(**over: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "ID": "svc1",
        "Version": {"Index": 1234},
        "CreatedAt": "2026-11-26T07:00:00Z",
        "UpdatedAt": "2026-11-26T07:58:00.123456789Z",
        "Spec": {
            "Name": "web",
            "Labels": {"swarm-medic.enable": "true", "com.docker.stack.namespace": "shop"},
            "TaskTemplate": {
                "ContainerSpec": {"Image": "nginx:1.27@sha256:abcd", "Args": ["nginx"]},
                "Resources": {
                    "Limits": {"NanoCPUs": 2_000_000_000},
                    "Reservations": {"NanoCPUs": 500_000_000, "MemoryBytes": 268435456},
                },
                "Placement": {
                    "Constraints": ["node.labels.zone==eu", "node.role!=manager"],
                    "MaxReplicas": 2,
                },
                "ForceUpdate": 3,
            },
            "Mode": {"Replicated": {"Replicas": 4}},
        },
        "PreviousSpec": {"Name": "web"},
        "UpdateStatus": {
            "State": "paused",
            "StartedAt": "2026-11-26T07:58:00Z",
            "Message": "update paused due to failure or early termination of task t9",
        },
    }
    obj.update(over)
    return obj


def test_service_from_api_replicated_paused() -> None:
    s = service_from_api(_service_obj())
    assert s.id == "svc1"
    assert s.name == "web"
    assert s.version == 1234
    assert dict(s.labels) == {"swarm-medic.enable": "true", "com.docker.stack.namespace": "shop"}
    assert s.mode == "replicated"
    assert s.replicas == 4
    assert s.image == "nginx:1.27@sha256:abcd"
    assert s.constraints == ("node.labels.zone==eu", "node.role!=manager")
    assert s.max_replicas_per_node == 2
    assert s.reservations == Resources(nano_cpus=500_000_000, memory_bytes=268435456)
    assert s.update_status == UpdateStatus(
        state="paused",
        message="update paused due to failure or early termination of task t9",
        started_at=_utc(7, 58, 0),
        completed_at=None,
    )
    assert s.has_previous_spec is True
    assert s.force_update == 3
    assert s.updated_at == pytest.approx(_utc(7, 58, 0, 123456), abs=1e-6)


def test_service_from_api_global_minimal() -> None:
    s = service_from_api(
        {
            "ID": "svc2",
            "Version": {"Index": 7},
            "Spec": {
                "Name": "agent",
                "TaskTemplate": {"ContainerSpec": {"Image": "agent:2"}},
                "Mode": {"Global": {}},
            },
        }
    )
    assert (s.mode, s.replicas) == ("global", None)
    assert s.image == "agent:2"
    assert s.constraints == ()
    assert s.max_replicas_per_node == 0
    assert s.reservations == Resources()
    assert s.update_status is None
    assert s.has_previous_spec is False
    assert s.previous_image == ""
    assert dict(s.labels) == {}
    assert s.updated_at is None


@pytest.mark.parametrize(
    ("previous", "image"),
    [
        ({"TaskTemplate": {"ContainerSpec": {"Image": "app:1@sha256:ab"}}}, "app:1@sha256:ab"),
        ({"Name": "web"}, ""),
        ({"TaskTemplate": {"ContainerSpec": {"Image": 7}}}, ""),
        ({"TaskTemplate": {"ContainerSpec": []}}, ""),
        ({"TaskTemplate": {"ContainerSpec": {"Image": "x" * 5000}}}, "x" * mapping.MAX_IMAGE),
    ],
)
def test_the_image_a_previous_spec_names(previous: dict[str, Any], image: str) -> None:
    """What a rollback runs, kept by a prune on every node; bounded like the other fields."""
    s = service_from_api(_service_obj(PreviousSpec=previous))
    assert s.previous_image == image


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ({"Replicated": {"Replicas": 0}}, ("replicated", 0)),
        ({"Replicated": {}}, ("replicated", 1)),
        ({"Global": {}}, ("global", None)),
        ({"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 3}}, ("replicated-job", None)),
        ({"GlobalJob": {}}, ("global-job", None)),
        ({}, ("replicated", 1)),
    ],
)
def test_service_modes(mode: dict[str, Any], expected: tuple[str, int | None]) -> None:
    s = service_from_api({"ID": "s", "Spec": {"Name": "n", "Mode": mode}})
    assert (s.mode, s.replicas) == expected


def test_service_update_status_completed_and_without_state() -> None:
    done = service_from_api(
        _service_obj(
            UpdateStatus={
                "State": "rollback_completed",
                "StartedAt": "2026-11-26T07:58:00Z",
                "CompletedAt": "2026-11-26T07:59:00Z",
                "Message": "rollback completed",
            }
        )
    )
    assert done.update_status is not None
    assert done.update_status.state == "rollback_completed"
    assert done.update_status.completed_at == _utc(7, 59, 0)
    # An UpdateStatus whose State is empty is as good as none.
    assert service_from_api(_service_obj(UpdateStatus={"Message": "x"})).update_status is None


def test_service_name_defaults_to_id() -> None:
    assert service_from_api({"ID": "svc9"}).name == "svc9"


def test_node_from_api_leader_manager() -> None:
    n = node_from_api(
        {
            "ID": "node1",
            "Version": {"Index": 9},
            "Spec": {"Role": "manager", "Availability": "active", "Labels": {"zone": "eu"}},
            "Description": {
                "Hostname": "mgr-1",
                "Platform": {"Architecture": "x86_64", "OS": "linux"},
                "Resources": {"NanoCPUs": 4_000_000_000, "MemoryBytes": 8_348_520_448},
                "Engine": {"EngineVersion": "27.3.1", "Labels": {"storage": "ssd"}},
            },
            "Status": {"State": "ready", "Addr": "10.0.0.11"},
            "ManagerStatus": {
                "Leader": True,
                "Reachability": "reachable",
                "Addr": "10.0.0.11:2377",
            },
        }
    )
    assert n.id == "node1"
    assert n.hostname == "mgr-1"
    assert (n.role, n.availability, n.state) == ("manager", "active", "ready")
    assert n.addr == "10.0.0.11"
    assert dict(n.labels) == {"zone": "eu"}
    assert dict(n.engine_labels) == {"storage": "ssd"}
    assert (n.platform_os, n.platform_arch) == ("linux", "x86_64")
    assert n.resources == Resources(4_000_000_000, 8_348_520_448)
    assert n.leader is True
    assert n.version == 9


def test_node_from_api_times_say_when_it_joined_and_last_changed() -> None:
    n = node_from_api(
        {
            "ID": "node2",
            "Version": {"Index": 31},
            "CreatedAt": "2026-11-26T07:00:00Z",
            "UpdatedAt": "2026-11-26T07:58:42.229777971Z",
            "Status": {"State": "down", "Message": "heartbeat failure"},
        }
    )
    assert n.version == 31
    assert n.created_at == pytest.approx(_utc(7, 0, 0), abs=1e-6)
    assert n.updated_at == pytest.approx(T0, abs=1e-6)
    unknown = node_from_api({"ID": "node3"})
    assert (unknown.version, unknown.created_at, unknown.updated_at) == (0, 0.0, 0.0)


def test_node_from_api_down_worker_defaults() -> None:
    n = node_from_api(
        {
            "ID": "node2",
            "Spec": {"Availability": "drain"},
            "Status": {"State": "down", "Message": "heartbeat failure"},
        }
    )
    assert (n.role, n.availability, n.state) == ("worker", "drain", "down")
    assert n.message == "heartbeat failure"
    assert n.hostname == ""
    assert n.leader is False
    assert n.resources == Resources()
    assert dict(n.labels) == {}


def test_labels_are_read_only() -> None:
    n = node_from_api({"ID": "n", "Spec": {"Labels": {"a": "b"}}})
    with pytest.raises(TypeError):
        n.labels["a"] = "c"  # type: ignore[index]


@pytest.mark.parametrize("fn", [node_from_api, service_from_api, task_from_api])
@pytest.mark.parametrize(
    "obj",
    [
        pytest.param({}, id="no-id"),
        pytest.param({"ID": ""}, id="empty-id"),
        pytest.param({"ID": 42, "Spec": {}}, id="int-id"),
    ],
)
def test_objects_without_an_id_raise(fn: Any, obj: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="without an ID"):
        fn(obj)


def test_info_from_api_manager() -> None:
    info = info_from_api(
        {
            "ServerVersion": "27.3.1",
            "Swarm": {
                "NodeID": "node1",
                "NodeAddr": "10.0.0.11",
                "LocalNodeState": "active",
                "ControlAvailable": True,
                "Error": "",
            },
        }
    )
    assert info.node_id == "node1"
    assert info.node_addr == "10.0.0.11"
    assert info.local_state == "active"
    assert info.control_available is True
    assert info.engine_version == "27.3.1"


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("2026-11-26T07:58:42.229777971Z", T0),
        ("2026-11-26T08:58:42.229777971+01:00", T0),  # the engine's own zone
        ("yesterday at noon", 0.0),  # unreadable: not said, and /info still read
        (None, 0.0),
    ],
)
def test_info_from_api_reads_the_engines_clock(said: object, expected: float) -> None:
    info = info_from_api({"ServerVersion": "28.5.2", "SystemTime": said})
    assert info.system_time == pytest.approx(expected, abs=1e-6)
    assert info.engine_version == "28.5.2"


def test_info_from_api_not_in_swarm() -> None:
    info = info_from_api({"ServerVersion": "27.3.1"})
    assert (info.node_id, info.local_state, info.control_available) == ("", "inactive", False)


# --- events --------------------------------------------------------------------------------


def test_event_from_api_with_time_nano() -> None:
    e = event_from_api(
        {
            "Type": "service",
            "Action": "update",
            "Actor": {"ID": "svc1", "Attributes": {"name": "web", "updatestate.new": "paused"}},
            "scope": "swarm",
            "time": 1_764_143_922,
            "timeNano": 1_764_143_922_229_777_971,
        }
    )
    assert (e.type, e.action, e.actor_id) == ("service", "update", "svc1")
    assert e.time_nano == 1_764_143_922_229_777_971
    assert dict(e.attributes) == {"name": "web", "updatestate.new": "paused"}
    assert e.identity == (1_764_143_922_229_777_971, "service", "update", "svc1")


def test_event_from_api_time_only_and_no_actor() -> None:
    e = event_from_api({"Type": "node", "Action": "update", "time": 1_764_143_922})
    assert e.time_nano == 1_764_143_922_000_000_000
    assert e.actor_id == ""
    assert dict(e.attributes) == {}


def test_event_attributes_are_stringified() -> None:
    e = event_from_api(
        {
            "Type": "container",
            "Action": "die",
            "timeNano": 5,
            "Actor": {"ID": "c", "Attributes": {"exitCode": 1}},
        }
    )
    assert dict(e.attributes) == {"exitCode": "1"}


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        pytest.param(["service", "update"], "not an object", id="list"),
        pytest.param("service update", "not an object", id="string"),
        pytest.param(None, "not an object", id="none"),
        pytest.param({"Action": "update", "time": 1}, "Type/Action", id="no-type"),
        pytest.param({"Type": "service", "time": 1}, "Type/Action", id="no-action"),
        pytest.param({"Type": 3, "Action": "update", "time": 1}, "Type/Action", id="int-type"),
        pytest.param({"Type": "service", "Action": "update"}, "without a time", id="no-time"),
        pytest.param(
            {"Type": "service", "Action": "update", "time": "1764143922"},
            "without a time",
            id="string-time",
        ),
    ],
)
def test_event_from_api_malformed(obj: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        event_from_api(obj)


# --- IPv4 only where the model says IPv4; container names ---------------------------------


def test_task_addresses_keep_ipv4_only() -> None:
    # a dual-stack overlay lists an IPv6 address next to the IPv4 one; the model (and every
    # probe plan) is IPv4, and one IPv6 target used to fail every probe of its namespace
    t = task_from_api(
        {
            "ID": "t1",
            "NetworksAttachments": [
                {
                    "Network": {"ID": "net1", "Spec": {"Name": "app"}},
                    "Addresses": ["10.0.1.5/24", "fd00:1::5/64"],
                },
                {"Network": {"ID": "net2", "Spec": {"Name": "v6"}}, "Addresses": ["fd00:2::7/64"]},
            ],
        }
    )
    assert t.addresses == (("net1", "app", "10.0.1.5"),)


def test_service_vips_keep_ipv4_only() -> None:
    svc = service_from_api(
        _service_obj(
            Endpoint={
                "VirtualIPs": [
                    {"NetworkID": "net1", "Addr": "10.0.1.2/24"},
                    {"NetworkID": "net1", "Addr": "fd00:1::2/64"},
                ]
            }
        )
    )
    assert svc.vips == (("net1", "10.0.1.2"),)


def _container_obj(**over: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "Id": "c" * 64,
        "Names": ["/web.2.tsk0123456789abcdefghijk"],
        "State": "running",
        "Labels": {
            "com.docker.swarm.task.id": "tsk0123456789abcdefghijk",
            "com.docker.swarm.service.id": "svc1",
            "com.docker.swarm.service.name": "web",
            "com.docker.swarm.node.id": "node1",
        },
        "NetworkSettings": {
            "Networks": {
                "app": {"NetworkID": "net1", "IPAddress": "10.0.1.5"},
                "v6only": {"NetworkID": "net2", "IPAddress": "", "GlobalIPv6Address": "fd00::5"},
            }
        },
    }
    obj.update(over)
    return obj


def test_container_from_api_carries_its_name_without_the_slash() -> None:
    c = container_from_api(_container_obj())
    assert c.name == "web.2.tsk0123456789abcdefghijk"
    assert (c.task_id, c.service_id, c.service_name, c.node_id) == (
        "tsk0123456789abcdefghijk",
        "svc1",
        "web",
        "node1",
    )
    assert c.networks == (("net1", "10.0.1.5"),)


@pytest.mark.parametrize("names", [None, [], [7], "not-a-list"])
def test_container_from_api_without_a_readable_name(names: object) -> None:
    assert container_from_api(_container_obj(Names=names)).name == ""


# --- found by tests/unit/test_properties.py: what a malformed object tripped on ------------


@pytest.mark.parametrize(
    ("reader", "raw"),
    [
        (mapping.node_from_api, None),
        (mapping.node_from_api, {"ID": "n1", "Spec": ["not", "a", "mapping"]}),
        (mapping.service_from_api, {"ID": "s1", "Spec": {"Mode": "Replicated"}}),
        (
            mapping.service_from_api,
            {
                "ID": "s1",
                "Spec": {
                    "TaskTemplate": {"Resources": {"Reservations": {"NanoCPUs": float("inf")}}}
                },
            },
        ),
        (mapping.task_from_api, {"ID": "t1", "NetworksAttachments": [1]}),
        (mapping.info_from_api, {"Swarm": "inactive"}),
        (mapping.container_from_api, {"Id": "c1", "Labels": ["x"]}),
    ],
)
def test_a_malformed_object_is_a_value_error(reader: Callable[[Any], object], raw: Any) -> None:
    with pytest.raises(ValueError, match="malformed"):
        reader(raw)


def test_info_from_api_reads_the_data_root_the_cert_expiry_and_the_trust_root() -> None:
    info = info_from_api(
        {
            "DockerRootDir": "/srv/docker",
            "Swarm": {
                "NodeID": "n1",
                "Cluster": {
                    "Spec": {"CAConfig": {"NodeCertExpiry": 7776000000000000}},
                    "TLSInfo": {"TrustRoot": "-----BEGIN CERTIFICATE-----"},
                },
            },
        }
    )
    assert info.docker_root_dir == "/srv/docker"
    assert info.node_cert_expiry == 90 * 86400.0
    assert info.trust_root == "-----BEGIN CERTIFICATE-----"


@pytest.mark.parametrize(
    "cluster",
    [None, [], {"Spec": []}, {"Spec": {"CAConfig": {"NodeCertExpiry": "90d"}}}, {"TLSInfo": 1}],
)
def test_an_odd_cluster_in_info_says_nothing_of_certificates(cluster: object) -> None:
    info = info_from_api({"Swarm": {"NodeID": "n1", "Cluster": cluster}})
    assert (info.node_id, info.node_cert_expiry, info.trust_root) == ("n1", 0.0, "")


def test_an_image_as_a_prune_reads_it() -> None:
    image = mapping.image_from_api(
        {
            "Id": "sha256:" + "a" * 64,
            "RepoTags": ["app:1", "<none>:<none>", 7],
            "RepoDigests": ["app@sha256:" + "b" * 64, "<none>@<none>"],
            "Created": 1_700_000_000,
            "Size": 1234,
            "Containers": 2,
        }
    )
    assert image.tags == ("app:1",)
    assert image.digests == ("app@sha256:" + "b" * 64,)
    assert (image.created, image.size, image.containers) == (1_700_000_000.0, 1234, 2)
    untagged = mapping.image_from_api({"Id": "sha256:c", "RepoTags": None, "Containers": -1})
    assert (untagged.tags, untagged.digests, untagged.containers) == ((), (), -1)


def test_a_container_as_a_prune_reads_it() -> None:
    listed = {
        "Id": "c1",
        "Names": ["/web.1.t1"],
        "State": "exited",
        "ImageID": "sha256:" + "a" * 64,
        "Labels": {mapping.TASK_LABEL: "t1"},
    }
    inspected = {
        "LogPath": "/var/lib/docker/containers/c1/c1-json.log",
        "HostConfig": {"LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}}},
    }
    c = mapping.engine_container_from_api(listed, inspected)
    assert (c.id, c.state, c.task_id, c.name) == ("c1", "exited", "t1", "web.1.t1")
    assert (c.log_driver, c.log_max_size) == ("json-file", "10m")
    assert c.log_path.endswith("c1-json.log") and c.image_id.startswith("sha256:")
    unknown = mapping.engine_container_from_api({"Id": "c2", "State": "running"}, None)
    assert (unknown.task_id, unknown.log_driver, unknown.log_path) == ("", "", "")
