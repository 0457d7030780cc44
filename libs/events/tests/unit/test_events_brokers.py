"""The broker profiles: what each broker may be asked, chosen by ACCORD_BROKER alone."""

from __future__ import annotations

import pytest

from accord.events.brokers import KAFKA, TANSU, UnknownBroker, broker_profile, profile_named
from accord.events.topic_layout import COMPOSE, KUBERNETES, TopicSettings, broker_config


def test_apache_kafka_is_the_default_and_gets_idempotent_acks_all_producers() -> None:
    assert broker_profile({}) is KAFKA
    assert KAFKA.producer_options() == {"acks": "all", "enable_idempotence": True}


def test_tansu_refuses_producer_ids_so_its_producers_only_wait_for_all_replicas() -> None:
    assert broker_profile({"ACCORD_BROKER": "tansu"}) is TANSU
    assert TANSU.producer_options() == {"acks": "all", "enable_idempotence": False}


def test_a_quiet_consumer_waits_longest_on_kafka_which_answers_at_the_first_record() -> None:
    # Tansu answers when the wait runs out: its waits are latencies, so they stay short.
    assert TANSU.fetch_max_wait_ms < KAFKA.fetch_max_wait_ms
    assert KAFKA.idle_fetch_max_wait_ms is not None
    assert TANSU.idle_fetch_max_wait_ms is not None
    assert TANSU.idle_fetch_max_wait_ms < KAFKA.idle_fetch_max_wait_ms
    assert KAFKA.fetch_max_wait_ms < KAFKA.idle_fetch_max_wait_ms


@pytest.mark.parametrize("name", ["KAFKA", " kafka ", "Tansu"])
def test_names_are_read_in_any_case(name: str) -> None:
    assert profile_named(name).name == name.strip().lower()


def test_an_unknown_broker_is_one_line_naming_the_choices() -> None:
    with pytest.raises(UnknownBroker, match=r"ACCORD_BROKER='redpanda' .* kafka, tansu"):
        broker_profile({"ACCORD_BROKER": "redpanda"})


def test_three_replicas_need_two_in_sync_and_fewer_need_all() -> None:
    assert KUBERNETES.replicas == 3
    assert KUBERNETES.min_insync_replicas == 2
    assert COMPOSE.min_insync_replicas == 1
    assert TopicSettings.for_replicas(3, 2).min_insync_replicas == 1
    assert TopicSettings.for_replicas(3, 5).min_insync_replicas == 2


def test_topic_configs_delete_old_records_and_keep_dead_letters_longer() -> None:
    event, dead = KUBERNETES.config("user.created"), KUBERNETES.config("user.created.dlq")
    assert event["cleanup.policy"] == dead["cleanup.policy"] == "delete"
    assert int(dead["retention.ms"]) > int(event["retention.ms"])
    assert event["min.insync.replicas"] == "2"


@pytest.mark.parametrize(
    ("partitions", "replicas", "min_isr"), [(0, 1, 1), (1, 0, 1), (1, 1, 2), (3, 3, 0)]
)
def test_an_impossible_layout_is_refused(partitions: int, replicas: int, min_isr: int) -> None:
    with pytest.raises(ValueError, match=r"partition|replicas"):
        TopicSettings(partitions, replicas, min_isr)


def test_kafkas_own_topics_are_replicated_like_accords() -> None:
    config = broker_config(KUBERNETES)
    assert config["offsets.topic.replication.factor"] == "3"
    assert config["transaction.state.log.min.isr"] == config["min.insync.replicas"] == "2"
