"""Helpers for runbooks: functions over what a runbook is given, pure like it.

Not the contract (that is `swarm_medic.runbook`): a runbook needs none of these, but they
answer questions several runbooks ask, the same way the pipeline answers them.

    running(task)                      running and meant to run
    running_ips(snapshot, sid, net)    the sorted IPs of a service's running tasks on a network
    probe_port(service)                the port the probes use (label swarm-medic.probe.port,
                                       else the first target port), or None
    published_targets(snapshot)        every published TCP port of a settled service, with
                                       the node address it answers at (Published)
    placement_misses(snapshot, svc)    every node that cannot take one more task, and why (Miss)
    fitting_nodes(snapshot, svc)       the nodes that can
    summarise(misses)                  the misses in words, one clause per reason
    stale_versions(stored, services, keep)
                                       config/secret families with versions no spec names
                                       beyond the newest `keep` (VersionFamily), as
                                       `swarm-medic rollout gc` sees them; DEFAULT_KEEP is
                                       its `--keep` default
"""

from swarm_medic.core.constraints import Miss, fitting_nodes, placement_misses, summarise
from swarm_medic.core.reach import (
    Published,
    probe_port,
    published_targets,
    running,
    running_ips,
)
from swarm_medic.core.versions import DEFAULT_KEEP, VersionFamily, stale_versions

__all__ = [
    "DEFAULT_KEEP",
    "Miss",
    "Published",
    "VersionFamily",
    "fitting_nodes",
    "placement_misses",
    "probe_port",
    "published_targets",
    "running",
    "running_ips",
    "stale_versions",
    "summarise",
]
