from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"

    def ready(self) -> None:
        from anymail.signals import tracking

        from delivery.services import nudge_drain
        from delivery.webhooks.events import on_tracking
        from reliability.signals import sending_resumed

        # The providers' events (docs/architecture.md, "Delivery events").
        tracking.connect(on_tracking, weak=False, dispatch_uid="gpmas-delivery-events")

        # On resume the drain runs at once (docs/architecture.md, "The halt switch").
        sending_resumed.connect(
            lambda **_: nudge_drain(), weak=False, dispatch_uid="drain-on-resume"
        )
