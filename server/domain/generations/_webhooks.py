"""A version's webhook deliveries: listing them with their attempts, and replaying one."""

from __future__ import annotations

import storage
from server.domain import _transactions as transactions
from server.domain.generations._base import ServiceBase, generation_row, not_found, version_name, version_row
from server.domain.principals import Principal
from server.domain.resources import VersionRef, WebhookDelivery, webhook_delivery_of


class WebhookVerbs(ServiceBase):
    async def list_webhook_deliveries(
        self, *, caller: Principal, generation_id: str, number: int | None, after_id: int, limit: int
    ) -> list[tuple[int, WebhookDelivery]]:
        """The deliveries of a generation (or of its version `number`), oldest first, after the one
        whose listing key is `after_id`; each with its listing key."""

        def work(tx: storage.Transaction) -> list[storage.DeliveryView]:
            if number is None:
                generation_row(tx, caller, generation_id)
                version_id = None
            else:
                version_id = version_row(tx, caller, VersionRef(generation_id, number)).id
            return storage.list_webhook_deliveries(
                tx, generation_id=generation_id, version_id=version_id, after_id=after_id, limit=limit
            )

        views = await transactions.read(self._db, work)
        return [(view.delivery.id or 0, webhook_delivery_of(view)) for view in views]

    async def replay_webhook_delivery(
        self, *, caller: Principal, ref: VersionRef, webhook_id: str
    ) -> WebhookDelivery:
        """Makes the delivery PENDING and due now, at the start of its retry schedule."""

        def work(tx: storage.Transaction) -> storage.DeliveryView:
            version = version_row(tx, caller, ref)
            assert version.id is not None
            delivery = storage.replay_webhook_delivery(tx, version_id=version.id, webhook_id=webhook_id)
            if delivery is None:
                name = f"{version_name(ref)}/webhookDeliveries/{webhook_id}"
                raise not_found("webhook delivery", name, "WEBHOOK_DELIVERY_NOT_FOUND")
            views = storage.list_webhook_deliveries(
                tx,
                generation_id=ref.generation_id,
                version_id=version.id,
                after_id=(delivery.id or 1) - 1,
                limit=1,
            )
            return views[0]

        view = await transactions.write(self._db, work)
        self.wake_webhooks()
        return webhook_delivery_of(view)
