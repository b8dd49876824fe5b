"""Wiring for `swarm-medic run`: builds every part, starts the threads, stops them on a signal."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from swarm_medic import __version__
from swarm_medic.core import failpoints
from swarm_medic.core.alerts import AlertBook
from swarm_medic.core.errors import EngineError, SettingsError
from swarm_medic.core.model import Event
from swarm_medic.core.protocol import PROTOCOL
from swarm_medic.core.settings import Settings, describe
from swarm_medic.nodes.agent import NodeAgent
from swarm_medic.nodes.channel import RequestAuth
from swarm_medic.nodes.endpoint import NodeEndpoint
from swarm_medic.nodes.rounds import Prober
from swarm_medic.pipeline import registry
from swarm_medic.pipeline.hold import AlertsHold
from swarm_medic.pipeline.observe import Schedule
from swarm_medic.pipeline.scan import Medic
from swarm_medic.pipeline.watch import Watcher
from swarm_medic.swarm import Engine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from swarm_medic.telemetry.notify import Notifier
from swarm_medic.web import view
from swarm_medic.web.alerts import AlertsEndpoint, route
from swarm_medic.web.status import Page, StatusView


class App:
    """The wiring of `swarm-medic run`: builds every part from the settings and owns the
    threads, so the parts themselves take their collaborators as arguments and stay testable
    without a process, a signal or a port."""

    def __init__(
        self,
        settings: Settings,
        make_engine: Callable[[], Engine],
        metrics_registry: CollectorRegistry | None = None,
        runbook_settings: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.prom = metrics_registry or CollectorRegistry()
        self.metrics = Metrics(self.prom)
        self.journal = Journal(self.metrics, structlog.get_logger("swarm_medic"))
        if settings.notify.notify:
            try:
                self.journal.notifier = Notifier(settings.notify.notify, self.journal.notification)
            except ValueError as exc:  # the URL is not repeated: it carries tokens
                raise SettingsError(f"--notify / SWARM_MEDIC_NOTIFY: {exc}") from None
        try:
            AlertsHold.of(settings.safety)
        except ValueError as exc:  # names the flags, never a value
            raise SettingsError(f"--hold-while-alerts: {exc}") from None
        self.runbooks = registry.load(registry.default_dirs(settings.runbooks.runbooks_dir))
        # --runbook-setting and SWARM_MEDIC_RUNBOOK_*: a wrong one stops the start here
        self.runbooks.configure(runbook_settings, os.environ if env is None else env)
        self.metrics.preinitialise()
        self.engine = make_engine()
        self.agent = NodeAgent(
            self.engine,
            netns_dir=settings.probes.netns_dir,
            timeout=settings.probes.probe_timeout,
            on_retired=self.journal.hand_retired,
            on_pruned=self.journal.hand_pruned,
            dry_run=settings.safety.dry_run,
        )
        secret = settings.probes.secret
        auth = RequestAuth(secret.encode()) if secret else None
        self.control = NodeEndpoint(self.agent, auth, self.journal)
        # alerts in (POST /v1/alerts): kept on every instance, acted on by the leader
        http = settings.http
        self.alert_book = AlertBook(http.alerts_max_age) if http.alerts_token else None
        self.medic = Medic(
            self.engine,
            settings,
            self.runbooks,
            self.journal,
            prober=Prober(
                settings.probes,
                self.agent,
                port=http.http_port,
                scope=settings.safety,
                journal=self.journal,
            ),
            failpoint=failpoints.from_env(self.journal.failpoint),
            alerts=self.alert_book,
        )
        self.schedule = Schedule(self._scan, settings.scan.scan_interval, settings.scan.scan_jitter)
        self.medic.wake = self.schedule.wake
        self.alerts_in = AlertsEndpoint(
            http.alerts_token, self.alert_book, self.journal, time.time, self.schedule.wake
        )
        # The stream gets its own client: it holds a connection open for as long as it lives.
        self.watcher = Watcher(make_engine(), self.journal, self._on_event)
        self.stopping = threading.Event()
        self.http: Any = None
        self.status_page = Page(self.status)

    def _scan(self) -> None:
        try:
            self.medic.scan()
        except Exception as exc:  # noqa: BLE001 - the journal logs it with its traceback
            self.journal.scan_crashed(exc)

    def _on_event(self, ev: Event) -> None:
        self.schedule.wake(0.5)

    def health(self) -> tuple[bool, dict[str, Any]]:
        st = self.medic.state
        stale_after = max(3 * self.settings.scan.scan_interval, 60.0)
        fresh = st.last_ok is not None and time.time() - st.last_ok < stale_after
        ok = fresh and self.watcher.connected
        return ok, {
            "version": __version__,  # pyproject.toml's, as --version and the image label say
            # the brain-to-node protocol: instances one apart work together (rolling upgrade)
            "protocol": PROTOCOL,
            "role": st.role,
            "snapshot_fresh": fresh,
            "event_stream_connected": self.watcher.connected,
            "last_scan_age_seconds": None
            if st.last_ok is None
            else round(time.time() - st.last_ok, 1),
            "last_error": st.last_error,
            "verifying": len(st.pending),
            "circuit_breakers_open": st.circuits_open,
            # paused is healthy (an operator's choice); None: the ledger could not be read
            "paused": (st.pause is not None) if st.pause_known else None,
            "pause": None if st.pause is None else st.pause.fields(),
            "remediations_in_progress": st.in_progress,
            "alerts_hold": st.hold or None,
            # what this instance speaks (None until the engine first answered)
            "engine": None if self.engine.speaking is None else self.engine.speaking.fields(),
        }

    def status(self) -> StatusView:
        """What GET / shows: built from the state the scan publishes, never waiting on it."""
        st = self.medic.state
        if not st.pause_known:
            pause = None  # not read yet (or unreadable): /healthz says which; no banner guessed
        else:
            pause = st.pause.describe() if st.pause is not None else None
        return view.build(self.medic, time.time(), version=__version__, pause=pause)

    def banner(self) -> None:
        s, h = self.settings, self.settings.http
        self.metrics.set_info(
            version=__version__,
            protocol=str(PROTOCOL),
            mode="dry_run" if s.safety.dry_run else "act",
            scope=s.safety.scope,
        )
        # Asked once here (retried a few seconds while dockerd comes up) so the start-up line
        # says what it speaks; an engine not up yet is asked again by every scan.
        try:
            engine_says = self.engine.speaks().describe()
        except EngineError as exc:
            engine_says = f"not answering yet: {exc}"
        self.journal.starting(
            __version__,
            describe(s),
            protocol=PROTOCOL,
            engine=getattr(self.engine, "base_url", "?"),
            engine_version=engine_says,
            runbooks=sorted(self.runbooks.runbooks),
            scan_interval=s.scan.scan_interval,
            cooldown=s.safety.cooldown,
            budget_per_hour=s.safety.budget_per_hour,
            http=f"{h.http_addr}:{h.http_port}" if h.http_port else "off",
            pages=f"{h.pages_addr or h.http_addr}:{h.pages_port}" if h.pages_port else "same",
            status_token="set" if h.status_token else "none",
            notify=self.journal.notifier.receivers if self.journal.notifier else "off",
        )
        self.journal.load_errors(self.runbooks.errors)

    def serve_http(self) -> Any:
        """The port (and the pages' own listener, with --pages-port): listening on return."""
        from swarm_medic.web.http import serve

        h = self.settings.http
        return serve(
            h.http_addr,
            h.http_port,
            self.prom,
            self.health,
            route(self.alerts_in, self.control.handle),
            journal=self.journal,
            status=self.status_page,
            pages=(h.pages_addr or h.http_addr, h.pages_port) if h.pages_port else None,
            status_token=h.status_token,
        )

    def run(self) -> int:
        self.banner()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        if self.settings.http.http_port:
            self.http = self.serve_http()
        if self.journal.notifier is not None:
            self.journal.notifier.start()
        self.watcher.start(since_nano=time.time_ns())
        self.schedule.start()
        self.stopping.wait()
        self.journal.stopping()
        self.watcher.stop()
        self.schedule.stop()
        if self.journal.notifier is not None:
            self.journal.notifier.stop()  # a moment to deliver what is queued, no more
        if self.http is not None:
            self.http.shutdown()
        self.engine.close()
        return 0
