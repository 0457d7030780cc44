"""Kafka client settings read from KAFKA_* variables."""

from __future__ import annotations

import ssl

import pytest

from accord.events.kafka_config import DEFAULT_BOOTSTRAP, client_config, redacted


def test_plaintext_is_the_default() -> None:
    assert client_config({}) == {
        "bootstrap_servers": DEFAULT_BOOTSTRAP,
        "security_protocol": "PLAINTEXT",
    }


def test_reads_os_environ_when_no_mapping_is_given(
    monkeypatch: pytest.MonkeyPatch, no_kafka_env: None
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    assert client_config()["bootstrap_servers"] == "kafka-1:9092,kafka-2:9092"


def test_empty_bootstrap_falls_back_to_the_default() -> None:
    assert client_config({"KAFKA_BOOTSTRAP_SERVERS": ""})["bootstrap_servers"] == DEFAULT_BOOTSTRAP


def test_sasl_ssl_builds_tls_and_sasl_settings() -> None:
    config = client_config(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "broker:9093",
            "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "KAFKA_SASL_USERNAME": "accord",
            "KAFKA_SASL_PASSWORD": "s3cret",
        }
    )
    assert config["bootstrap_servers"] == "broker:9093"
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-256"
    assert config["sasl_plain_username"] == "accord"
    assert config["sasl_plain_password"] == "s3cret"
    assert isinstance(config["ssl_context"], ssl.SSLContext)


def test_sasl_mechanism_defaults_to_scram_sha_512() -> None:
    config = client_config({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"})
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert "ssl_context" not in config


def test_ssl_without_sasl_has_no_sasl_keys() -> None:
    config = client_config({"KAFKA_SECURITY_PROTOCOL": "SSL"})
    assert isinstance(config["ssl_context"], ssl.SSLContext)
    assert not any(key.startswith("sasl_") for key in config)


def test_plaintext_ignores_sasl_variables() -> None:
    config = client_config({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"})
    assert not any(key.startswith("sasl_") for key in config)


def test_redacted_masks_the_password_only() -> None:
    config = client_config(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_USERNAME": "accord",
            "KAFKA_SASL_PASSWORD": "s3cret",
        }
    )
    masked = redacted(config)
    assert masked["sasl_plain_password"] == "***"
    assert "s3cret" not in repr(masked)
    assert masked["sasl_plain_username"] == "accord"
    assert masked["bootstrap_servers"] == config["bootstrap_servers"]
    assert config["sasl_plain_password"] == "s3cret", "redacted() must not change its input"


def test_empty_security_protocol_falls_back_to_plaintext() -> None:
    assert client_config({"KAFKA_SECURITY_PROTOCOL": ""})["security_protocol"] == "PLAINTEXT"
