"""Apache Kafka as a local process: one KRaft node (broker and controller), from Maven Central.

`make kafka` (part of `make install` where `java` and `mvn` exist) copies the pinned broker
and its dependencies into deploy/kafka/lib; this module runs `kafka.Kafka` from there with a
bounded heap: storage formatted on first start (`kafka.tools.StorageTool format
--standalone`), ready when a metadata request succeeds, stopped with SIGTERM (a controlled
shutdown), and, like every child of the stack, killed by the kernel if we die.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from accord.stack.broker import LocalBroker
from accord.stack.errors import StartupError
from accord.stack.network import free_port
from accord.stack.process import ManagedProcess
from accord.stack.readiness import start_and_wait

_logger = logging.getLogger(__name__)
_HOST = "127.0.0.1"
_STARTUP_TIMEOUT = 90.0
#: Where `make kafka` puts the broker's jars; ACCORD_KAFKA_LIB points elsewhere.
DEFAULT_LIB = Path(__file__).resolve().parents[5] / "deploy" / "kafka" / "lib"
_LOG4J = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = out
"""


class KafkaUnavailable(StartupError):
    """Java or the broker's jars are missing: say how to get them."""


def kafka_lib() -> Path:
    """The folder of the broker's jars; KafkaUnavailable when it is not there."""
    lib = Path(os.environ.get("ACCORD_KAFKA_LIB", DEFAULT_LIB))
    if shutil.which("java") is None:
        raise KafkaUnavailable("Apache Kafka needs Java 17 or newer: no `java` on PATH")
    if not any(lib.glob("kafka_2.13-*.jar")):
        raise KafkaUnavailable(
            f"Apache Kafka's jars are missing from {lib}: run `make kafka` (needs mvn)"
        )
    return lib


def cluster_id() -> str:
    """A new KRaft cluster id: a UUID in URL-safe base64 without padding, as Kafka's."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KafkaBroker(LocalBroker):
    """One Apache Kafka node in KRaft mode on 127.0.0.1; its data lives in `data_dir`
    (formatted on first start, kept across restarts)."""

    stop_timeout_s = 30.0  # a controlled shutdown moves leadership and flushes the logs

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        log_dir: Path | None = None,
        heap_mb: int = 512,
        log_level: str = "WARN",
    ) -> None:
        """Choose the folders, the port (a free one by default) and the heap."""
        super().__init__(port=port, log_dir=log_dir)
        self.data_dir = data_dir
        self.controller_port = free_port(_HOST)
        self.heap_mb = heap_mb
        self.log_level = log_level

    def config(self) -> str:
        """The node's server.properties: one broker and controller, replication factor 1."""
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{_HOST}:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://{_HOST}:{self.port},CONTROLLER://{_HOST}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{_HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir / "log"),
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # A group forms at once: tests and `make run` have no stragglers to wait for.
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    async def start(self) -> None:
        """Format the storage if new, start the node and wait until it answers metadata."""
        lib = kafka_lib()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        properties = self.data_dir / "server.properties"
        properties.write_text(self.config())
        logging_config = self.data_dir / "log4j2.properties"
        logging_config.write_text(_LOG4J.format(level=self.log_level))
        java = [
            "java",
            f"-Xmx{self.heap_mb}m",
            f"-Xms{min(128, self.heap_mb)}m",
            "-XX:+UseSerialGC",  # two cores shared with everything else: no parallel GC threads
            "-XX:TieredStopAtLevel=1",  # starts faster; a test broker is never CPU-bound on JIT
            f"-Dlog4j2.configurationFile={logging_config}",
            "-cp",
            f"{lib}/*",
        ]
        if not (self.data_dir / "log" / "meta.properties").exists():
            self._format(java, properties)
        log_path = None if self.log_dir is None else self.log_dir / "kafka.log"
        argv = [*java, "kafka.Kafka", str(properties)]
        self._process = ManagedProcess("kafka broker", argv, log_path=log_path)
        seconds = await start_and_wait(
            self._process, self._probe, timeout=_STARTUP_TIMEOUT, what="Apache Kafka"
        )
        _logger.info("Apache Kafka ready on %s in %.2f s", self.bootstrap_servers, seconds)

    def _format(self, java: list[str], properties: Path) -> None:
        argv = [
            *java,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "--cluster-id",
            cluster_id(),
            "--config",
            str(properties),
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603 - our own argv
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise StartupError(f"formatting Kafka's storage failed: {' / '.join(tail)}")
