"""Prometheus metrics, in a registry of each application's own (tests build several apps)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select

from storage.models import Escalation, OutboundMessage
from storage.queries import undeliverable_escalations

if TYPE_CHECKING:
    from bot.runtime import Runtime


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_in = Counter("gridbot_messages_in", "Messages stored in the inbox", ["channel", "kind"],
                                   registry=r)
        self.callbacks_refused = Counter("gridbot_callbacks_refused", "Callbacks refused",
                                         ["channel", "status"], registry=r)
        self.escalations_open = Gauge("gridbot_escalations_open", "Escalations not yet closed", registry=r)
        self.outbox_depth = Gauge("gridbot_outbox_depth", "Outbox rows waiting to be sent", registry=r)
        self.inbox_depth = Gauge("gridbot_inbox_depth", "Inbox rows waiting to be handled", registry=r)
        self.send_failures = Counter("gridbot_send_failures", "Failed send attempts", ["channel", "reason"],
                                     registry=r)
        self.alerts_undeliverable = Counter(
            "gridbot_alerts_undeliverable", "Escalation alerts that no channel of their recipient delivered",
            registry=r)
        self.escalations_undeliverable = Gauge(
            "gridbot_escalations_undeliverable", "Escalations not yet closed with an undeliverable alert",
            registry=r)
        self.handler_latency = Histogram(
            "gridbot_handler_latency_seconds", "Time in the dispatcher for one message", registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))

    async def refresh(self, runtime: Runtime) -> None:
        """The gauges are computed on scrape: counts from the database are the truth."""
        from storage.models import InboundMessage

        async with runtime.db.session() as s:
            self.escalations_open.set(await s.scalar(
                select(func.count()).select_from(Escalation).where(Escalation.status != "closed")) or 0)
            self.outbox_depth.set(await s.scalar(
                select(func.count()).select_from(OutboundMessage)
                .where(OutboundMessage.status.in_(("pending", "sending")))) or 0)
            self.escalations_undeliverable.set(len(await undeliverable_escalations(s)))
            self.inbox_depth.set(await s.scalar(
                select(func.count()).select_from(InboundMessage).where(InboundMessage.status == "pending")) or 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
