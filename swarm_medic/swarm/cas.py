"""Compare-and-swap, retried: read, change, write on the version read; lost: read again.

One policy (tenacity) for every read-change-write of the swarm's shared objects: the ledger's
`cas_update` in both engines, and rollout's swap of a service's spec. A lost compare-and-swap
(Conflict) means another writer's change is already in, so the next read sees it: the ledger
is tried again at once; a service's spec after a pause (`wait`), since swarm's updater writes
it again right after an update. Any other error is not retried here (the engine's own requests
retry what is transient). `sleep` is injected, so tests pass a list's append.
"""

from __future__ import annotations

from collections.abc import Callable

import tenacity

from swarm_medic.core.errors import Conflict
from swarm_medic.core.model import LedgerDoc
from swarm_medic.swarm import Change, LedgerStore, R

ATTEMPTS = 5  # the first read-change-write and at most 4 more after a lost compare-and-swap


def retrying(
    sleep: Callable[[float], None],
    *,
    attempts: int = ATTEMPTS,
    wait: tenacity.wait.wait_base | None = None,
) -> tenacity.Retrying:
    """The policy: again while Conflict, `attempts` in all; then that Conflict is raised."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=wait or tenacity.wait_none(),
        retry=tenacity.retry_if_exception_type(Conflict),
        sleep=sleep,
        reraise=True,
    )


def update_ledger(
    store: LedgerStore,
    name: str,
    change: Callable[[LedgerDoc | None], Change[R]],
    policy: tenacity.Retrying,
) -> R:
    """`LedgerStore.cas_update` over the store's own read and write, for both engines: the
    last Conflict is raised as it came, for the caller to say what could not be written."""

    def once() -> R:
        doc = store.read_ledger(name)
        changed = change(doc)
        if changed.labels is not None:
            store.write_ledger(name, doc, changed.labels)
        return changed.result

    return policy(once)
