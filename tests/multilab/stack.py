"""swarm-medic deployed the way operators deploy it: deploy/swarm-medic.yml, unchanged, with
`docker stack deploy` on the 3-node lab, by image ID (scripts/image.sh builds it offline and
scripts/multilab.sh load-image puts it on every node). Its log is read back with
`docker service logs`, as an operator reads it."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.labkit import MULTILAB, ROOT, docker, node_sock, on_node
from tests.waiting import wait_until

STACK = "medic"
SERVICE = f"{STACK}_swarm-medic"
SECRET = "swarm-medic-secret"  # noqa: S105 - the docker secret's name, not its value
LEDGER = "swarm-medic-ledger"
IMAGE = "swarm-medic:dev"
PORT = 9324
NODES = (1, 2, 3)
# Faster than the stack's defaults (15 s) to keep the test short; both are documented knobs.
SCAN_INTERVAL = "5s"
PROBE_INTERVAL = "3s"

LogLine = dict[str, Any]


def node_addr(i: int) -> str:
    return f"10.99.0.1{i}"


def image_id(image: str = IMAGE) -> str:
    return docker("image", "inspect", "-f", "{{.Id}}", image)


def load_image(image: str) -> None:
    done = subprocess.run(
        ["bash", str(MULTILAB), "load-image", image],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, f"load-image {image}: {done.stderr}"


def next_image() -> str:
    """A new image ID with the same content: what a release looks like to swarm."""
    dockerfile = f"FROM {IMAGE}\nLABEL org.swarm-medic.test.rebuild=1\n"
    subprocess.run(
        ["docker", "build", "-q", "-t", f"{IMAGE}-next", "-"],
        input=dockerfile,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    load_image(f"{IMAGE}-next")
    return image_id(f"{IMAGE}-next")


def deploy(image: str, *, dry_run: bool) -> None:
    """`docker stack deploy` of the shipped stack file; only its documented variables set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_MEDIC_", "MEDIC_"))}
    env.update(
        DOCKER_HOST=node_sock(1),
        MEDIC_IMAGE=image,
        MEDIC_STACK=STACK,
        MEDIC_SCAN_INTERVAL=SCAN_INTERVAL,
        MEDIC_PROBE_INTERVAL=PROBE_INTERVAL,
        # the lab's nodes keep their data roots under /var/lib/medic (nI): the parent, bound
        # at its own path, holds each node's, as an operator with a moved data root sets it
        MEDIC_DOCKER_ROOT="/var/lib/medic",
        SWARM_MEDIC_DRY_RUN="true" if dry_run else "false",
    )
    done = subprocess.run(
        ["docker", "stack", "deploy", "--detach=true", "-c", "deploy/swarm-medic.yml", STACK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def remove() -> None:
    on_node(1, "stack", "rm", STACK, check=False)
    # the host port must be free again for the other tests' medics on the nodes
    wait_until(
        "the stack's containers gone",
        lambda: (
            not any(
                on_node(
                    i, "ps", "-aq", "--filter", f"label=com.docker.swarm.service.name={SERVICE}"
                )
                for i in NODES
            )
        ),
        60,
    )
    on_node(1, "secret", "rm", SECRET, check=False)
    on_node(1, "config", "rm", LEDGER, check=False)
    on_node(1, "network", "rm", f"{STACK}_default", check=False)


def create_secret() -> None:
    subprocess.run(
        ["docker", "-H", node_sock(1), "secret", "create", SECRET, "-"],
        input=os.urandom(32).hex(),
        capture_output=True,
        text=True,
        check=True,
    )


@dataclass(frozen=True)
class MedicTask:
    id: str
    node: str
    state: str
    image: str


def tasks() -> list[MedicTask]:
    """The stack's tasks desired running."""
    out = on_node(
        1,
        "service",
        "ps",
        SERVICE,
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--format",
        "{{json .}}",
        check=False,
    )
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [MedicTask(r["ID"], r["Node"], r["CurrentState"], r["Image"]) for r in rows]


def container_on(i: int) -> str:
    return on_node(
        i, "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={SERVICE}"
    ).strip()


def healthy_everywhere(image: str | None = None) -> bool:
    ts = tasks()
    if sorted(t.node for t in ts) != [f"node{i}" for i in NODES]:
        return False
    if not all(t.state.startswith("Running") for t in ts):
        return False
    for i in NODES:
        cid = container_on(i)
        if not cid or "\n" in cid:
            return False
        if image and on_node(i, "inspect", "-f", "{{.Image}}", cid, check=False) != image:
            return False
        if on_node(i, "inspect", "-f", "{{.State.Health.Status}}", cid, check=False) != "healthy":
            return False
    return True


def http_get(i: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{node_addr(i)}:{PORT}{path}", timeout=5) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def metric(i: int, name: str) -> float | None:
    """One sample of node I's instance, labels ignored (summed)."""
    code, text = http_get(i, "/metrics")
    assert code == 200, text
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{")
    ]
    return sum(values) if values else None


def logs() -> list[LogLine]:
    """Every JSON line of every task of the stack, old tasks included (`docker service logs`)."""
    # the medic logs to stderr, and `docker service logs` keeps the streams apart
    out = subprocess.run(
        ["docker", "-H", node_sock(1), "service", "logs", "--raw", "--no-trunc", SERVICE],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    text = out.stdout + "\n" + out.stderr
    lines: list[LogLine] = []
    for raw in text.splitlines():
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            lines.append(obj)
    return lines


def find(lines: Iterable[LogLine], event: str, **match: Any) -> list[LogLine]:
    return [
        ln
        for ln in lines
        if str(ln.get("event", "")).startswith(event)
        and all(ln.get(k) == v for k, v in match.items())
    ]


def wait_for_line(event: str, timeout: float, **match: Any) -> LogLine:
    def found() -> LogLine | None:
        hits = find(logs(), event, **match)
        return hits[0] if hits else None

    try:
        hit: LogLine = wait_until(f"log line {event!r} {match}", found, timeout, every=1.0)
    except AssertionError as exc:
        tail = "\n".join(json.dumps(ln) for ln in logs()[-40:])
        status = on_node(1, "service", "inspect", "-f", "{{json .UpdateStatus}}", SERVICE)
        ps = on_node(1, "service", "ps", "--no-trunc", SERVICE)
        raise AssertionError(
            f"{exc}\n--- update status: {status}\n--- tasks:\n{ps}"
            f"\n--- service logs tail ---\n{tail}"
        ) from None
    return hit
