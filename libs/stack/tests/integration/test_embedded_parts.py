"""Start the real embedded parts (Tansu, PostgreSQL, scim2-server) and use them."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import textwrap
import uuid
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from accord.events import topics
from accord.events.brokers import TANSU
from accord.orchestrator.adapters.smtp import SmtpMailer, SmtpSettings
from accord.orchestrator.workflows.mail import Mail
from accord.stack import demo
from accord.stack.broker import EmbeddedBroker
from accord.stack.errors import StartupError
from accord.stack.platform import Platform, PlatformConfig
from accord.stack.postgres import EmbeddedPostgres
from accord.stack.process import ManagedProcess
from accord.stack.scim_target import ScimTarget
from accord.stack.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration

SCIM_JSON = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


async def wait_until_gone(pid: int, timeout: float = 5.0) -> bool:
    """Poll until `pid` no longer runs (a zombie counts as gone)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        await asyncio.sleep(0.05)
    return False


async def wait_for_text(path: Path, text: str, timeout: float = 10.0) -> None:
    """Poll until `text` appears in the file at `path`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if path.exists() and text in path.read_text():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


async def test_broker_produces_consumes_and_stops(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_dir=tmp_path)
    async with broker:
        assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
        topic = f"test-{uuid.uuid4().hex}"
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"hello", key=b"k1")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap_servers,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), 10)
        finally:
            await consumer.stop()
        assert (record.key, record.value) == (b"k1", b"hello")
        process = broker.process
        assert process is not None
        assert process.pid is not None
        pid = process.pid
    assert not process.running
    assert process.returncode is not None
    assert await wait_until_gone(pid)
    await broker.stop()  # idempotent


async def test_broker_on_a_busy_port_reports_the_log_tail(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        broker = EmbeddedBroker(port=blocker.getsockname()[1], log_dir=tmp_path)
        with pytest.raises(StartupError, match="exited before it was ready") as caught:
            await broker.start()
    assert "last log lines" in str(caught.value)
    assert broker.process is not None
    assert not broker.process.running


async def test_postgres_answers_and_keeps_data_between_runs(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    async with EmbeddedPostgres(data_dir) as pg:
        assert pg.dsn == f"postgresql://accord@127.0.0.1:{pg.port}/accord"
        conn = await asyncpg.connect(pg.dsn)
        try:
            assert await conn.fetchval("select 1") == 1
            await conn.execute("create table kept (value text)")
            await conn.execute("insert into kept values ('first run')")
        finally:
            await conn.close()
        assert (data_dir / "PG_VERSION").exists()
    assert pg.process is not None
    assert not pg.process.running

    async with EmbeddedPostgres(data_dir) as again:
        conn = await asyncpg.connect(again.dsn)
        try:
            assert await conn.fetchval("select value from kept") == "first run"
        finally:
            await conn.close()


async def test_postgres_refuses_a_live_server_and_recovers_from_sigkill(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    first = EmbeddedPostgres(data_dir)
    await first.start()
    try:
        with pytest.raises(StartupError, match="already running"):
            await EmbeddedPostgres(data_dir).start()
        assert first.process is not None
        first.process.send_signal(signal.SIGKILL)
        await first.process.wait()
    finally:
        await first.stop()
    assert (data_dir / "postmaster.pid").exists()

    async with EmbeddedPostgres(data_dir) as second:
        conn = await asyncpg.connect(second.dsn)
        try:
            assert await conn.fetchval("select 1") == 1
        finally:
            await conn.close()


async def test_scim_target_requires_the_token_and_stores_users(tmp_path: Path) -> None:
    async with ScimTarget(log_dir=tmp_path) as target:
        assert target.base_url == f"http://127.0.0.1:{target.port}"
        async with httpx.AsyncClient(base_url=target.base_url, timeout=5) as anonymous:
            assert (await anonymous.get("/Users")).status_code == 401
        headers = {"Authorization": f"Bearer {target.bearer_token}", "Content-Type": SCIM_JSON}
        async with httpx.AsyncClient(
            base_url=target.base_url, headers=headers, timeout=5
        ) as client:
            created = await client.post(
                "/Users", json={"schemas": [USER_SCHEMA], "userName": "ada.lovelace"}
            )
            assert created.status_code == 201, created.text
            user_id = created.json()["id"]
            fetched = await client.get(f"/Users/{user_id}")
            assert fetched.status_code == 200
            assert fetched.json()["userName"] == "ada.lovelace"


async def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    log_path = tmp_path / "stubborn.log"
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    process = ManagedProcess("stubborn", [sys.executable, "-c", script], log_path=log_path)
    await process.start()
    await wait_for_text(log_path, "ready")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await process.stop(timeout=0.5)
    assert loop.time() - started >= 0.5
    assert process.returncode == -signal.SIGKILL
    assert not process.running
    await process.stop()  # idempotent
    assert process.tail() == "ready"


async def test_children_die_when_the_parent_is_killed() -> None:
    parent_script = textwrap.dedent(
        """
        import asyncio, sys
        from accord.stack.process import ManagedProcess

        async def main():
            child = ManagedProcess("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"])
            await child.start()
            print(child.pid, flush=True)
            await asyncio.sleep(30)

        asyncio.run(main())
        """
    )
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", parent_script, stdout=asyncio.subprocess.PIPE
    )
    assert parent.stdout is not None
    try:
        child_pid = int(await asyncio.wait_for(parent.stdout.readline(), 20))
        assert psutil.pid_exists(child_pid)
    finally:
        parent.kill()
        await parent.communicate()
    assert await wait_until_gone(child_pid)


async def test_accord_up_seeds_its_demo_on_tansu_whatever_its_own_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # accord up's own process has no ACCORD_BROKER (the default names Apache Kafka, whose
    # idempotent producers Tansu refuses): the seed follows the broker accord up started.
    monkeypatch.delenv("ACCORD_BROKER", raising=False)
    async with EmbeddedBroker(log_dir=tmp_path) as broker:
        await demo.seed(broker.bootstrap_servers, TANSU)
        consumer = AIOKafkaConsumer(
            topics.USER_CREATED,
            bootstrap_servers=broker.bootstrap_servers,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )
        await consumer.start()
        try:
            seen = set()
            async with asyncio.timeout(20):
                while len(seen) < len(demo.ORGANISATION):
                    record = await consumer.getone()
                    seen.add(record.key)
        finally:
            await consumer.stop()
    assert seen == {p.user_id.encode() for p in demo.ORGANISATION}


async def test_accord_up_s_mail_catcher_gets_what_the_orchestrator_sends(tmp_path: Path) -> None:
    # The environment accord up gives the orchestrator, read by the orchestrator's own
    # settings, sends a workflow's mail to the catcher, where it is kept as a file.
    platform = Platform(PlatformConfig.ephemeral(tmp_path, mail_catcher=True))
    assert platform.mail is not None
    async with platform.mail:
        mailer = SmtpMailer(SmtpSettings.model_validate(platform.service_env()))
        await mailer.send(
            Mail(
                to=["ada@example.com"],
                subject="Welcome, Ada",
                text="Your accounts are ready.",
                message_id="<run-1.welcome@accord.test>",
            )
        )
        (caught,) = platform.mail.messages()
    assert caught.rcpt_tos == ["ada@example.com"]
    assert caught.mail_from == "accord@localhost"
    assert caught.subject == "Welcome, Ada"
    eml = (tmp_path / "mail" / "1.eml").read_text()
    assert "Subject: Welcome, Ada" in eml
    assert (
        "1.eml: from accord@localhost to ada@example.com"
        in (tmp_path / "mail" / "server.log").read_text()
    )


async def test_a_restarted_catcher_keeps_the_earlier_mail(tmp_path: Path) -> None:
    for subject in ("first", "second"):
        async with SmtpSink(tmp_path) as sink:
            mailer = SmtpMailer(SmtpSettings(host=sink.host, port=sink.port, security="none"))
            mail = Mail(
                to=["a@example.com"], subject=subject, text="-", message_id=f"<{subject}@a.test>"
            )
            await mailer.send(mail)
    assert [m.subject for m in SmtpSink(tmp_path).messages()] == ["first", "second"]


async def test_a_catcher_on_a_taken_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}"):
            await SmtpSink(tmp_path, port=port).start()
