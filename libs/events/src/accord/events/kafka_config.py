"""Kafka client settings from the environment: bootstrap servers, TLS and SASL/SCRAM."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def client_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """aiokafka connection keyword arguments, read from KAFKA_* variables.

    KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL (PLAINTEXT, SSL, SASL_PLAINTEXT,
    SASL_SSL), KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
    KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SSL_CAFILE, KAFKA_SSL_CERTFILE,
    KAFKA_SSL_KEYFILE.
    """
    env = os.environ if env is None else env
    config: dict[str, Any] = {
        "bootstrap_servers": env.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP,
    }
    protocol = (env.get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
    config["security_protocol"] = protocol
    if protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        config["ssl_context"] = create_ssl_context(
            cafile=env.get("KAFKA_SSL_CAFILE") or None,
            certfile=env.get("KAFKA_SSL_CERTFILE") or None,
            keyfile=env.get("KAFKA_SSL_KEYFILE") or None,
        )
    if protocol.startswith("SASL_"):
        config["sasl_mechanism"] = env.get("KAFKA_SASL_MECHANISM") or "SCRAM-SHA-512"
        config["sasl_plain_username"] = env.get("KAFKA_SASL_USERNAME")
        config["sasl_plain_password"] = env.get("KAFKA_SASL_PASSWORD")
    return config


def redacted(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with secrets masked, for logs and error messages."""
    return {k: ("***" if "password" in k else v) for k, v in config.items()}
