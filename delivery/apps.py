from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"

    def ready(self) -> None:
        from delivery.services import nudge_drain
        from reliability.signals import sending_resumed

        # On resume the drain runs at once (docs/architecture.md, "The halt switch").
        sending_resumed.connect(
            lambda **_: nudge_drain(), weak=False, dispatch_uid="drain-on-resume"
        )
