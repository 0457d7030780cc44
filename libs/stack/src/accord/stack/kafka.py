"""Apache Kafka as local processes: KRaft nodes (broker and controller each), from Maven Central.

`make kafka` (part of `make install` where `java` and `mvn` exist) copies the pinned broker
and its dependencies into deploy/kafka/lib; this module runs `kafka.Kafka` from there with a
bounded heap. A `KafkaNode` is one node of a quorum: its storage formatted on first start
(`kafka.tools.StorageTool format --initial-controllers`, the same voters on every node),
ready when it answers a metadata request, stopped with SIGTERM (a controlled shutdown) and,
like every child of the stack, killed by the kernel if we die. `KafkaBroker` is the node
that is a whole cluster by itself (the suite's broker, `accord up`); the three-node cluster
of the fault tests is `accord.stack.kafka_cluster`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import signal
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from accord.events.topic_layout import COMPOSE, TopicSettings, broker_config
from accord.stack.broker import LocalBroker
from accord.stack.errors import StartupError
from accord.stack.network import free_port
from accord.stack.process import ManagedProcess
from accord.stack.readiness import start_and_wait

_logger = logging.getLogger(__name__)
_HOST = "127.0.0.1"
_STARTUP_TIMEOUT = 90.0
_FORMAT_TIMEOUT = 120.0
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


def kafka_uuid() -> str:
    """A new Kafka id (cluster, metadata directory): a UUID in URL-safe base64 without
    padding. Like Kafka's own Uuid.randomUuid, never one starting with "-": the storage
    tool's argument parser would take it for an option (1 in 64 did)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


@dataclass(frozen=True)
class Voter:
    """A controller of a KRaft quorum: its node id, controller port and metadata directory."""

    node_id: int
    controller_port: int
    directory_id: str

    @classmethod
    def new(cls, node_id: int) -> Voter:
        """A voter on a free port, with a new directory id."""
        return cls(node_id, free_port(_HOST), kafka_uuid())

    @property
    def endpoint(self) -> str:
        """Its controller listener, "127.0.0.1:PORT"."""
        return f"{_HOST}:{self.controller_port}"

    @property
    def initial_controller(self) -> str:
        """How the storage tool's --initial-controllers names it: id@host:port:directory."""
        return f"{self.node_id}@{self.endpoint}:{self.directory_id}"


class KafkaNode(LocalBroker):
    """One Apache Kafka node in KRaft mode on 127.0.0.1, broker and controller (`voter`) of
    a quorum of `quorum` voters; its data lives in `data_dir` (formatted on first start with
    `cluster_id`, kept across restarts)."""

    stop_timeout_s = 30.0  # a controlled shutdown moves leadership and flushes the logs

    def __init__(
        self,
        data_dir: Path,
        *,
        voter: Voter,
        quorum: Sequence[Voter],
        cluster_id: str,
        layout: TopicSettings,
        port: int | None = None,
        log_dir: Path | None = None,
        log_name: str = "kafka.log",
        heap_mb: int = 512,
        log_level: str = "WARN",
    ) -> None:
        """Describe the node; nothing runs until start()."""
        super().__init__(port=port, log_dir=log_dir)
        if voter not in quorum:
            raise ValueError(f"node {voter.node_id} must be one of the quorum's voters")
        self.data_dir = data_dir
        self.voter = voter
        self.quorum = tuple(quorum)
        self.cluster_id = cluster_id
        self.layout = layout
        self.log_name = log_name
        self.heap_mb = heap_mb
        self.log_level = log_level

    @property
    def node_id(self) -> int:
        """Its node id, as metadata names it (partition leaders, replicas)."""
        return self.voter.node_id

    @property
    def controller_port(self) -> int:
        """The port of its controller listener."""
        return self.voter.controller_port

    def config(self) -> str:
        """The node's server.properties."""
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.bootstrap.servers": ",".join(v.endpoint for v in self.quorum),
            "listeners": (
                f"PLAINTEXT://{_HOST}:{self.port},CONTROLLER://{_HOST}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{_HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir / "log"),
            **broker_config(self.layout),
            # A group forms at once: tests and `make run` have no stragglers to wait for.
            "group.initial.rebalance.delay.ms": "0",
            # Tests give their consumers 2 s sessions, so that a dead member leaves quickly
            # (Kafka's floor is 6 s; Accord's services default to 6 s, as in production).
            "group.min.session.timeout.ms": "1000",
            # A handful of group coordinators, not 50 partitions to create on the first
            # group lookup of a new node (a second or more on two shared cores).
            "offsets.topic.num.partitions": "6",
            "auto.create.topics.enable": "true",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    @property
    def formatted(self) -> bool:
        """Whether its storage was formatted (by an earlier start)."""
        return (self.data_dir / "log" / "meta.properties").exists()

    async def start(self) -> None:
        """Format the storage if new, start the node and wait until it answers metadata
        (the same ports and data on a restart)."""
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
        if not self.formatted:
            await self._format(java, properties)
        log_path = None if self.log_dir is None else self.log_dir / self.log_name
        argv = [*java, "kafka.Kafka", str(properties)]
        self._process = ManagedProcess(f"kafka node {self.node_id}", argv, log_path=log_path)
        seconds = await start_and_wait(
            self._process, self._probe, timeout=_STARTUP_TIMEOUT, what=self._process.name
        )
        _logger.info("Apache Kafka node %d ready on %s in %.2f s", self.node_id, self.port, seconds)

    async def kill(self) -> int:
        """SIGKILL the node (no controlled shutdown, as a crash) and return its exit status."""
        if self._process is None or not self._process.running:
            raise RuntimeError(f"kafka node {self.node_id} is not running")
        self._process.send_signal(signal.SIGKILL)
        return await self._process.wait()

    async def _format(self, java: list[str], properties: Path) -> None:
        argv = [
            *java,
            "kafka.tools.StorageTool",
            "format",
            # The = form: an id is never taken for an option, whatever it starts with.
            f"--cluster-id={self.cluster_id}",
            f"--config={properties}",
            f"--initial-controllers={','.join(v.initial_controller for v in self.quorum)}",
        ]
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        try:
            async with asyncio.timeout(_FORMAT_TIMEOUT):
                output, _ = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise StartupError(f"formatting node {self.node_id}'s storage timed out") from None
        if process.returncode != 0:
            tail = output.decode(errors="replace").strip().splitlines()[-3:]
            raise StartupError(
                f"formatting node {self.node_id}'s storage failed: {' / '.join(tail)}"
            )


class KafkaBroker(KafkaNode):
    """One Apache Kafka node that is a cluster by itself: the only voter of its quorum,
    replication factor 1 (the COMPOSE layout); its data lives in `data_dir`."""

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
        voter = Voter.new(1)
        super().__init__(
            data_dir,
            voter=voter,
            quorum=[voter],
            cluster_id=kafka_uuid(),
            layout=COMPOSE,
            port=port,
            log_dir=log_dir,
            heap_mb=heap_mb,
            log_level=log_level,
        )
