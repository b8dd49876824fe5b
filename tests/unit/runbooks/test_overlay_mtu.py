"""overlay-mtu: paths that lose full-size echoes while small ones pass, as each node said them;
one finding per overlay, naming every lossy path and the node they all touch."""

from __future__ import annotations

from collections.abc import Mapping

from swarm_medic.core.model import Network, Severity, TargetKind
from swarm_medic.core.protocol import Lossy
from swarm_medic.core.reach import Health, Reachability
from swarm_medic.core.runbook import Context, Runbook, context
from swarm_medic.core.settings import Settings
from tests import builders as build
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY, detect

MTU: Runbook = REGISTRY.runbooks["overlay-mtu"]
NET = "ov1aaaaaaaaaaaaaaaaaaaaaa"


def lossy(to: str, fails: int = 3, size: int = 1450, net: str = NET) -> Lossy:
    return Lossy(net=net, node=to, ip=f"10.0.1.{to[-1]}", size=size, fails=fails)


def ctx(
    said: Mapping[str, tuple[Lossy, ...]], underlay: int | None = 1500, age: float = 5
) -> Context:
    nodes = [build.node(f"n{i}", hostname=f"node{i}", addr=f"10.99.0.1{i}") for i in (1, 2, 3)]
    snap = build.snapshot(nodes=nodes, me="n1")
    snap = type(snap)(**{**snap.__dict__, "networks": (Network(NET, "web-net", "overlay"),)})
    health = {
        n: Health(NOW - age, None, (), paths, underlay)
        for n, paths in {"n1": (), "n2": (), "n3": (), **said}.items()
    }
    return context(snap, NOW, Settings(), reach=Reachability(rounds=3, health=health))


def test_quiet_when_no_path_loses_large_packets() -> None:
    assert detect(MTU, ctx({})) == []


def test_quiet_below_the_rounds_in_a_row() -> None:
    assert detect(MTU, ctx({"n1": (lossy("n2", fails=2),)})) == []


def test_a_stale_word_is_not_judged() -> None:
    assert detect(MTU, ctx({"n1": (lossy("n2"),)}, age=700)) == []


def test_every_lossy_path_of_an_overlay_is_one_finding_naming_the_node_they_touch() -> None:
    said = {"n1": (lossy("n2"),), "n3": (lossy("n2"),), "n2": (lossy("n1", fails=4),)}
    (f,) = detect(MTU, ctx(said))
    assert f.key == f"overlay-mtu:{NET}" and f.severity is Severity.WARNING
    assert f.node_ids == ("n1", "n2", "n3")
    assert f.target is not None and (f.target.kind, f.target.id) == (TargetKind.NODE, "n2")
    assert "web-net" in f.summary and "1450 bytes" in f.summary
    assert "node1 and node2, node2 and node3" in f.summary
    assert "every lossy path touches node2" in f.summary
    assert f.details["underlay_mtu"] == "node1=1500, node2=1500, node3=1500"
    assert f.details["paths"].count("->") == 3


def test_an_underlay_too_small_for_the_overlay_says_the_mtu_to_use() -> None:
    (f,) = detect(MTU, ctx({"n1": (lossy("n2"),)}, underlay=1450))
    assert f.cause == "mtu"
    assert "com.docker.network.driver.mtu=1400" in f.advice


def test_underlays_big_enough_point_at_the_path() -> None:
    (f,) = detect(MTU, ctx({"n1": (lossy("n2"),)}))
    assert f.cause == "path"
    assert "checksum offload" in f.advice and "ping -M do -s 1422" in f.advice


def test_an_unknown_underlay_is_said_unknown() -> None:
    (f,) = detect(MTU, ctx({"n1": (lossy("n2"),)}, underlay=None))
    assert f.details["underlay_mtu"] == "node1=unknown, node2=unknown"
    assert f.target is None  # one pair: which of the two is not known


def test_two_overlays_are_two_findings() -> None:
    other = "ov2bbbbbbbbbbbbbbbbbbbbbb"
    found = detect(MTU, ctx({"n1": (lossy("n2"), lossy("n3", net=other))}))
    assert sorted(f.key for f in found) == [f"overlay-mtu:{NET}", f"overlay-mtu:{other}"]


def test_the_first_report_waits_for_paths_still_counting_then_stays() -> None:
    from swarm_medic.core.runbook import Sightings

    seen = Sightings()
    counting = {"n1": (lossy("n2"),), "n3": (lossy("n2", fails=1),)}

    def scan(said: Mapping[str, tuple[Lossy, ...]], at: float) -> list[str]:
        c = ctx(said)
        c = context(c.snapshot, at, Settings(), reach=c.probes.reach, sightings=seen)
        found = [f.summary for f in detect(MTU, c)]
        seen.end_scan()
        return found

    assert scan(counting, NOW) == []  # node3's path is still counting: wait for it
    (summary,) = scan({"n1": (lossy("n2"),), "n3": (lossy("n2"),)}, NOW + 2)
    assert "node1 and node2, node2 and node3" in summary
    # said: a path that starts counting later does not take it back
    assert len(scan({**counting, "n2": (lossy("n1", fails=1),)}, NOW + 4)) == 1
    assert len(scan(counting, NOW + 40)) == 1  # never longer than SETTLE, either
