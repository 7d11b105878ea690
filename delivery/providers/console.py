import logging
import uuid

from delivery.message import OutgoingMessage
from delivery.providers.base import Adapter

log = logging.getLogger("gpmas.console_provider")


class ConsoleAdapter(Adapter):
    """Development only: writes the message to the log and accepts it."""

    def send(self, message: OutgoingMessage) -> str:
        message_id = f"console-{uuid.uuid4().hex}"
        log.info(
            "email %s to %s: %s\n%s",
            message_id,
            message.to_email,
            message.subject,
            message.text_body,
        )
        return message_id
