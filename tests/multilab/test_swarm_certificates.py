"""swarm-certificates on the 3-node lab: every node's instance reads its own certificate's
expiry (`<DockerRootDir>/swarm/certificates/swarm-node.crt`, inside its node) and says it in
its probe answer; the brain judges it against the swarm's NodeCertExpiry.

First, with the default thresholds, a healthy swarm (90-day certificates) stays quiet. Then the
swarm's certificates are made short: `docker swarm update --cert-expiry 1h` (the minimum) and
`docker swarm ca --rotate`, which reissues every node's certificate with that lifetime; with
the runbook's threshold set above it (warn=2h, share=100: less than the whole hour left counts)
every node is named as not renewed in time. The swarm's 90-day expiry is restored, and the
certificates reissued with it, whatever happened (a lab left with one-hour certificates would
lose its nodes once they are off for an hour).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.labkit import MedicProcess, on_node, record_timing, ts
from tests.multilab.kit import first_finding, leader_index, node_id
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

NodeMedics = Callable[..., list[MedicProcess]]
QUIET = 12.0  # six probe rounds at the fixture's 2 s


def named(medics: list[MedicProcess]) -> set[str]:
    return {
        str(n)
        for m in medics
        for f in m.find("finding", runbook="swarm-certificates")
        for n in f.get("nodes") or ()
    }


def test_default_thresholds_are_quiet_and_one_hour_certificates_are_named(
    node_medics: NodeMedics,
) -> None:
    lead = leader_index()
    ids = {node_id(i) for i in (1, 2, 3)}

    quiet = node_medics()
    time.sleep(QUIET)
    assert named(quiet) == set(), "\n".join(m.tail(15) for m in quiet)
    for m in quiet:
        m.stop()

    try:
        on_node(lead, "swarm", "update", "--cert-expiry", "1h")
        on_node(lead, "swarm", "ca", "--rotate", "--quiet")  # waits for every node's new one
        started = time.time()
        loud = node_medics(
            runbook_swarm_certificates_warn="2h", runbook_swarm_certificates_share="100"
        )
        _, finding = first_finding(loud, "swarm-certificates", 60)
        assert finding["cause"] == "not-renewed"
        assert "was not renewed in time" in str(finding["summary"])
        wait_until("every node named", lambda: named(loud) == ids or None, 30)
        record_timing(
            runbook="swarm-certificates",
            fault="--cert-expiry 1h, CA rotated, threshold 2h",
            detect=round(ts(finding) - started, 1),
            action="none (report once)",
        )
    finally:
        on_node(lead, "swarm", "update", "--cert-expiry", "2160h", check=False)
        on_node(lead, "swarm", "ca", "--rotate", "--quiet", check=False)
