from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"

    def ready(self) -> None:
        from delivery.services import nudge_drain
        from reliability.signals import sending_resumed

        # DESIGN.md §7: on resume the drain runs at once.
        sending_resumed.connect(
            lambda **_: nudge_drain(), weak=False, dispatch_uid="drain-on-resume"
        )
