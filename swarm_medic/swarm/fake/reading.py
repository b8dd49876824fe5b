"""The fake's SwarmReader: lists, the event stream and task logs, read as the real engine's are.

The node, service and task lists are answered as JSON bytes and decoded by `wire`, the event
stream as JSON lines decoded by `wire.EventLines`: the same decoding as the real engine's.
"""

from __future__ import annotations

import copy
import queue
from collections.abc import Iterator

import msgspec

from swarm_medic.core.errors import NotFound
from swarm_medic.core.model import Network, Node, Service, Stored, SwarmInfo, Task
from swarm_medic.swarm import EventStream, mapping, wire
from swarm_medic.swarm.fake.world import STOP, Json, World, ts


class _Lines:
    """The engine's side of an event stream: the backlog since `since`, then each event
    published while it is open, as the JSON lines dockerd sends."""

    def __init__(self, backlog: list[Json], live: queue.Queue[object]) -> None:
        self._backlog = backlog
        self._live = live

    def __iter__(self) -> Iterator[bytes]:
        for event in self._backlog:
            yield msgspec.json.encode(event) + b"\n"
        while True:
            item = self._live.get()
            if item is STOP:
                return
            yield msgspec.json.encode(item) + b"\n"

    def close(self) -> None:
        self._live.put(STOP)


def _frame(payload: bytes, stream: int = 1) -> bytes:
    """One frame of a non-TTY container's log stream (stream 1: stdout, 2: stderr)."""
    return bytes((stream, 0, 0, 0)) + len(payload).to_bytes(4, "big") + payload


class Reading(World):
    def info(self) -> SwarmInfo:
        self._enter(manager_only=False)
        answer: Json = {
            "ServerVersion": str(self.version_answer.get("Version") or ""),
            "Swarm": {
                "NodeID": self.node_id,
                "NodeAddr": "127.0.0.1",
                "LocalNodeState": "active",
                "ControlAvailable": self.manager,
            },
        }
        if self.system_time is not None:
            answer["SystemTime"] = ts(self.system_time)
        return mapping.info_from_api(answer)

    def nodes(self) -> tuple[Node, ...]:
        self._enter()
        return self._answer(self._nodes, wire.NODES)

    def services(self) -> tuple[Service, ...]:
        self._enter()
        return self._answer(self._services, wire.SERVICES)

    def tasks(self) -> tuple[Task, ...]:
        self._enter()
        return self._answer(self._tasks, wire.TASKS)

    def networks(self) -> tuple[Network, ...]:
        self._enter()
        return mapping.map_each(
            copy.deepcopy(list(self._networks.values())),
            mapping.network_from_api,
            "network",
            self.malformed,
        )

    def configs(self) -> tuple[Stored, ...]:
        self._enter()
        return mapping.map_each(
            copy.deepcopy(list(self._configs.values())), mapping.CONFIG, "config", self.malformed
        )

    def secrets(self) -> tuple[Stored, ...]:
        self._enter()
        return mapping.map_each(
            copy.deepcopy(list(self._secrets.values())), mapping.SECRET, "secret", self.malformed
        )

    def events(self, since_nano: int | None) -> EventStream:
        self._enter(manager_only=False)
        backlog = (
            []
            if since_nano is None
            else [
                e
                for e in self._events
                if isinstance(e, dict)
                and isinstance(e.get("timeNano"), int)
                and e["timeNano"] >= since_nano
            ]
        )
        q: queue.Queue[object] = queue.Queue()
        self._streams.append(q)
        return wire.EventLines(_Lines(backlog, q))

    def task_logs(self, task_id: str, tail: int) -> str:
        self._enter()
        self.log_reads.append((task_id, tail))
        if task_id not in self._tasks:
            raise NotFound(f"read the log of task {task_id[:12]}: no such task", status=404)
        lines, tty = self._logs.get(task_id, ([], False))
        last = lines[-max(1, min(tail, mapping.LOG_LINES)) :]
        body = b"".join(last if tty else (_frame(line) for line in last))
        return mapping.log_text(body[: mapping.LOG_READ_MAX], tail)
