"""Vendor connectors: pure functions from a webhook request to canonical events.

``CONNECTORS`` maps the name used in routes and tenant config to the connector object and
the pydantic model its config must be validated with.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel

from services.ingest.connectors import asterisk, chatwoot, generic, twilio
from services.ingest.connectors.base import Connector

CONNECTORS: Final[dict[str, tuple[Connector, type[BaseModel]]]] = {
    generic.NAME: (generic.connector, generic.GenericConfig),
    chatwoot.NAME: (chatwoot.connector, chatwoot.ChatwootConfig),
    twilio.NAME: (twilio.connector, twilio.TwilioConfig),
    asterisk.NAME: (asterisk.connector, asterisk.AsteriskConfig),
}

__all__ = ["CONNECTORS"]
