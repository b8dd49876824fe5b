"""disk-pressure's prune inside Medic.scan (issue 19, section 3): node2's instance (a real
NodeEndpoint behind the HTTP port on 127.0.0.1) says its data root is over the high watermark;
with `disk-pressure.prune=yes` the brain asks it to prune, it prunes toward the low watermark
keeping the image only a PreviousSpec names, and the fix is verified once its next reading is
below the low watermark. Without the setting, or with the node in dry-run, nothing goes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from swarm_medic.core.protocol import DnsResult, ProbeAnswer, ProbePlan, TcpResult
from swarm_medic.core.prune import Pruned
from swarm_medic.core.settings import HttpSettings, ProbeSettings, SafetySettings, Settings
from swarm_medic.nodes.agent import NodeAgent
from swarm_medic.nodes.channel import RequestAuth
from swarm_medic.nodes.endpoint import NodeEndpoint
from swarm_medic.nodes.health import Health
from swarm_medic.nodes.rounds import Prober
from swarm_medic.pipeline import registry
from swarm_medic.pipeline.scan import Medic
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from swarm_medic.web.http import Server, serve
from tests.builders import NOW as T0
from tests.pipeline.harness import ScriptedAgent, world
from tests.pipeline.support import Logs, sample

KEY = "a-shared-secret-of-the-test-swarm-0123456789"
GIB = 1 << 30
TOTAL, BASE = 100 * GIB, 50 * GIB
PINNED = "app@sha256:" + "c" * 64
PRUNE = ("disk-pressure.prune=yes", "disk-pressure.high=70", "disk-pressure.low=60")


class Node2(NodeAgent):
    """node2's instance: every target answers; its data root fills with what its engine holds
    (72% used: 50 GiB of other things, 21 GiB of images, a 1 GiB container)."""

    def __init__(self, root: Path, journal: Journal, *, dry_run: bool = False) -> None:
        engine = FakeEngine(node_id="n2")
        self.pruned: list[Pruned] = []
        self.journal = journal
        super().__init__(
            engine,
            "n2",
            spawn=lambda fn: fn(),
            dry_run=dry_run,
            on_pruned=self._said,
            health=Health(lambda: str(root), statvfs=self._measure),
        )
        self.fake = engine
        busybox = engine.add_image("medic/busybox:test", size=GIB, created=300)
        # what a rollback of `api` runs: on no container here, named by its PreviousSpec only
        self.previous = engine.add_image("app:1", digests=(PINNED,), size=5 * GIB, created=100)
        self.old = engine.add_image("old:1", size=10 * GIB, created=50)
        self.dangling = engine.add_image(size=5 * GIB, created=200)
        engine.add_container("", image_id=busybox)

    def _said(self, summary: Pruned) -> None:
        self.pruned.append(summary)
        self.journal.hand_pruned(summary)  # as App wires it

    def _measure(self, path: str) -> os.statvfs_result:
        used = BASE + sum(i["Size"] for i in self.fake._images.values())
        used += GIB * len(self.fake._containers)
        free = TOTAL - used
        return os.statvfs_result((1, 1, TOTAL, free, free, 0, 0, 0, 0, 255))

    def probe(self, plan: ProbePlan) -> ProbeAnswer:
        errors: list[str] = []
        return ProbeAnswer(
            node="n2",
            tcp=(TcpResult(True),) * len(plan.tcp),
            dns=(DnsResult(None, "not asked"),) * len(plan.dns),
            vip=(TcpResult(True),) * len(plan.vip),
            disks=self.health.disks(errors),
        )


@dataclass
class Instance:
    agent: Node2
    logs: Logs
    port: int
    now: list[float]  # one clock for the brain and the node (the channel checks timestamps)


@pytest.fixture
def node2(tmp_path: Path) -> Iterator[Callable[..., Instance]]:
    servers: list[Server] = []

    now = [T0]

    def start(*, dry_run: bool = False) -> Instance:
        logs = Logs()
        journal = Journal(Metrics(CollectorRegistry()), logs.logger)
        agent = Node2(tmp_path, journal, dry_run=dry_run)
        auth = RequestAuth(KEY.encode(), clock=lambda: now[0])
        endpoint = NodeEndpoint(agent, auth, journal)
        server = serve("127.0.0.1", 0, CollectorRegistry(), lambda: (True, {}), endpoint.handle)
        servers.append(server)
        return Instance(agent, logs, int(server.server_address[1]), now)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class Brain:
    """The brain's Medic on the fake swarm, on a clock of the test's: each scan 2 s later, so
    each has a probe round of its own."""

    def __init__(self, node: Instance, *flags: str) -> None:
        self.now = node.now
        self.medic, self.logs, self.prom = brain(node.port, lambda: self.now[0], *flags)

    def scan(self) -> None:
        self.now[0] += 2
        self.medic.scan()


def brain(
    port: int, clock: Callable[[], float], *flags: str
) -> tuple[Medic, Logs, CollectorRegistry]:
    fake, _, _ = world()
    api = fake.add_service("api", image="app:2", previous_spec=True)
    fake._services[api]["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]["Image"] = (
        f"docker.io/library/app:1@{PINNED.partition('@')[2]}"
    )
    settings = Settings(
        safety=SafetySettings(verify_hold=0.0),
        probes=ProbeSettings(secret=KEY, probe_interval=1.0, probe_grace=0.0),
        http=HttpSettings(http_port=port),
    )
    reg = registry.load([registry.builtin_dir()])
    reg.configure(list(flags))
    logs, prom = Logs(), CollectorRegistry()
    prober = Prober(
        settings.probes, ScriptedAgent(fake), port=port, scope=settings.safety, clock=clock
    )
    medic = Medic(
        fake, settings, reg, Journal(Metrics(prom), logs.logger), clock=clock, prober=prober
    )
    return medic, logs, prom


def test_the_node_prunes_toward_the_low_watermark_and_the_fix_is_verified(
    node2: Callable[..., Instance],
) -> None:
    n2 = node2()
    b = Brain(n2, *PRUNE)
    b.scan()
    (done,) = b.logs.named("action: prune_node done")
    assert done["runbook"] == "disk-pressure"
    # the dangling image, then the oldest unused one: 72% -> 67% -> 57%, below 60: stop
    assert n2.agent.fake.image_removals == [n2.agent.dangling, "old:1"]
    assert n2.agent.previous in {i.id for i in n2.agent.fake.images()}  # a rollback needs it
    (line,) = n2.logs.named("hand: pruned")
    assert (line["node"], line["used_percent_before"], line["used_percent_after"]) == (
        "n2",
        72.0,
        57.0,
    )
    assert line["reached"] is True and line["freed_bytes"] == 15 * GIB
    assert n2.logs.named("hand: pruning at the brain's request")

    b.scan()  # the next reading is below the low watermark: the fault is gone
    (healed,) = b.logs.named("verified: healed")
    assert (healed["action"], healed["node"]) == ("prune_node", "n2")
    labels = {"runbook": "disk-pressure", "action": "prune_node", "result": "done"}
    assert sample(b.prom, "swarm_medic_actions_total", **labels) == 1
    assert (
        sample(b.prom, "swarm_medic_remediations_total", runbook="disk-pressure", result="healed")
        == 1
    )


def test_without_the_setting_it_only_reports(node2: Callable[..., Instance]) -> None:
    n2 = node2()
    b = Brain(n2, *PRUNE[1:])
    b.scan()
    (said,) = [d for d in b.logs.named("decision: report only") if d["runbook"] == "disk-pressure"]
    assert "disk-pressure.prune=yes" in str(said["advice"])
    assert b.logs.named("action: prune_node done") == []
    assert n2.agent.fake.image_removals == [] and n2.agent.fake.build_prunes == 0


def test_a_node_in_dry_run_prunes_nothing_and_spends_nothing(
    node2: Callable[..., Instance],
) -> None:
    n2 = node2(dry_run=True)
    b = Brain(n2, *PRUNE)
    b.scan()
    (unreachable,) = b.logs.named("action: prune_node unreachable")
    said = str(unreachable["error"])
    assert "runs in dry-run; nothing removed" in said
    assert "0 stopped container(s), 1 dangling image(s), 1 unused image(s)" in said
    assert n2.agent.fake.image_removals == [] and n2.agent.pruned == []
    assert n2.logs.named("hand: dry-run, would prune; nothing removed")
