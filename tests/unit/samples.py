"""Valid, realistic inputs the unit tests start from: engine API objects as dockerd sends them
(a task, a service, a node), and one message of each kind of the brain-to-node protocol."""

from __future__ import annotations

from typing import Any

from swarm_medic.core.protocol import (
    ActAnswer,
    ActRequest,
    Container,
    DnsResult,
    DnsTarget,
    PortTarget,
    ProbeAnswer,
    ProbePlan,
    TcpResult,
    TcpTarget,
    VipTarget,
    encode,
)

# --- engine API objects ------------------------------------------------------------------------

TASK: dict[str, Any] = {
    "ID": "t1abc",
    "Version": {"Index": 41},
    "CreatedAt": "2026-11-26T07:58:40.000000001Z",
    "UpdatedAt": "2026-11-26T07:58:42.229777971Z",
    "Labels": {},
    "Spec": {"ContainerSpec": {"Image": "nginx:1.27", "Env": ["A=1"]}, "ForceUpdate": 0},
    "ServiceID": "svc1",
    "Slot": 1,
    "NodeID": "node1",
    "Status": {
        "Timestamp": "2026-11-26T07:58:42.229777971Z",
        "State": "running",
        "Message": "started",
        "ContainerStatus": {"ContainerID": "c0ffee", "PID": 42, "ExitCode": 0},
        "PortStatus": {},
    },
    "DesiredState": "running",
    "NetworksAttachments": [
        {
            "Network": {"ID": "ingress1", "Spec": {"Name": "ingress", "Ingress": True}},
            "Addresses": ["10.0.0.5/24"],
        },
        {
            "Network": {"ID": "net1", "Spec": {"Name": "shop_backend"}},
            "Addresses": ["10.0.1.7/24", ""],
        },
    ],
}

SERVICE: dict[str, Any] = {
    "ID": "svc1",
    "Version": {"Index": 1234},
    "CreatedAt": "2026-11-26T07:00:00Z",
    "UpdatedAt": "2026-11-26T07:58:00.123456789Z",
    "Spec": {
        "Name": "web",
        "Labels": {"swarm-medic.enable": "true"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "nginx:1.27@sha256:abcd",
                "Args": ["nginx"],
                "StopGracePeriod": 45_000_000_000,
                "Configs": [
                    {"File": {"Name": "/etc/app.conf"}, "ConfigID": "c1", "ConfigName": "app-1"}
                ],
                "Secrets": [{"File": {"Name": "pw"}, "SecretID": "s1", "SecretName": "pw-1"}],
            },
            "Resources": {
                "Reservations": {"NanoCPUs": 500_000_000, "MemoryBytes": 268435456},
                "Limits": {"MemoryBytes": 536870912},
            },
            "Networks": [{"Target": "net1", "Aliases": ["web"]}],
            "Placement": {"Constraints": ["node.labels.zone==eu"], "MaxReplicas": 2},
            "ForceUpdate": 3,
        },
        "Mode": {"Replicated": {"Replicas": 4}},
        "EndpointSpec": {"Mode": "vip", "Ports": [{"TargetPort": 80}, {"Protocol": "tcp"}]},
        "UpdateConfig": {"Parallelism": 2, "Delay": 5_000_000_000, "Order": "start-first"},
    },
    "PreviousSpec": {
        "Name": "web",
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "nginx:1.26@sha256:0123",
                "Configs": [{"ConfigID": "c0", "ConfigName": "app-0"}],
            }
        },
    },
    "Endpoint": {
        "VirtualIPs": [{"NetworkID": "net1", "Addr": "10.0.1.2/24"}, {"NetworkID": "x"}],
        "Ports": [
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}
        ],
    },
    "UpdateStatus": {
        "State": "paused",
        "StartedAt": "2026-11-26T07:58:00Z",
        "Message": "update paused due to failure or early termination of task t9",
    },
}

NODE: dict[str, Any] = {
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
    "ManagerStatus": {"Leader": True, "Reachability": "reachable"},
}


# --- protocol messages ------------------------------------------------------------------------

TARGET = TcpTarget(net="n1", task="t1", service="s1", node="node1", ip="10.0.1.2", port=80)
PLAN = ProbePlan(
    tcp=(TARGET,),
    dns=(DnsTarget(net="n1", service="s1", name="tasks.web"),),
    vip=(VipTarget(net="n1", service="s1", ip="10.0.1.100", port=80),),
    ports=(PortTarget(ip="192.168.0.2", port=8080),),
)
ANSWER = ProbeAnswer(
    node="node1",
    ipvs=True,
    tcp=(TcpResult(False, "timeout", 1000.0),),
    dns=(DnsResult(("10.0.1.2", "10.0.1.3")),),
    vip=(TcpResult(None, "no vantage point"),),
    ports=(TcpResult(False, "refused", 0.4),),
    errors=("vantage c1: gone",),
    containers=(Container(id="c" * 64, task="t1", service="s1", state="running", name="w.1"),),
)
VALID: list[tuple[type[Any], bytes]] = [
    (ProbePlan, encode(PLAN)),
    (ProbeAnswer, encode(ANSWER)),
    (ActRequest, encode(ActRequest(kind="remove_task_container", task="t1", service="s1"))),
    (ActAnswer, encode(ActAnswer(ok=True, container="c", task="t1", node="node1"))),
]
