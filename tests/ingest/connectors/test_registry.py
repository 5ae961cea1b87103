from __future__ import annotations

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from services.ingest.connectors import CONNECTORS
from services.ingest.connectors.asterisk import AsteriskConfig
from services.ingest.connectors.chatwoot import ChatwootConfig
from services.ingest.connectors.generic import GenericConfig
from services.ingest.connectors.twilio import TwilioConfig


def test_registry_names_connectors_and_config_classes() -> None:
    assert {name: config for name, (_, config) in CONNECTORS.items()} == {
        "generic": GenericConfig,
        "chatwoot": ChatwootConfig,
        "twilio": TwilioConfig,
        "asterisk": AsteriskConfig,
    }
    for name, (connector, _) in CONNECTORS.items():
        assert connector.name == name


@pytest.mark.parametrize(
    ("config", "secret_field"),
    [
        (GenericConfig(token=SecretStr("s3cret-token")), "token"),
        (ChatwootConfig(secret=SecretStr("s3cret-token")), "secret"),
        (TwilioConfig(auth_token=SecretStr("s3cret-token")), "auth_token"),
        (AsteriskConfig(token=SecretStr("s3cret-token")), "token"),
    ],
)
def test_configs_are_frozen_strict_and_hide_secrets(config: BaseModel, secret_field: str) -> None:
    assert "s3cret-token" not in repr(config)
    assert "s3cret-token" not in str(config.model_dump())
    with pytest.raises(ValidationError):
        setattr(config, secret_field, SecretStr("other"))
    with pytest.raises(ValidationError):
        type(config).model_validate({**config.model_dump(), "unexpected": 1})


def test_configs_validate_from_plain_tenant_sections() -> None:
    config = CONNECTORS["chatwoot"][1].model_validate(
        {"secret": "abc", "channel_map": {"Channel::Api": "sms"}}
    )
    assert isinstance(config, ChatwootConfig)
    assert config.secret is not None
    assert config.secret.get_secret_value() == "abc"
    assert config.channel_map == {"Channel::Api": "sms"}
    with pytest.raises(ValidationError):
        CONNECTORS["chatwoot"][1].model_validate({"channel_map": {"Channel::Api": "pigeon"}})
    with pytest.raises(ValidationError):
        CONNECTORS["twilio"][1].model_validate({})
