"""accord.runtime.folder_watch: a holder's folder is checked every few seconds off the event
loop, a failing check is logged and the watching goes on, and it stops with the runtime."""

from __future__ import annotations

import asyncio
import logging
import threading
from types import SimpleNamespace

import pytest

from accord.runtime.folder_watch import FolderWatching


class Counting(FolderWatching):
    watched = "test folder"

    def __init__(self, fail_first: int = 0) -> None:
        self.checks = 0
        self.threads: set[str] = set()
        self.fail_first = fail_first

    def reload_if_changed(self) -> None:
        self.checks += 1
        self.threads.add(threading.current_thread().name)
        if self.checks <= self.fail_first:
            raise RuntimeError("bug in the check")


async def test_the_folder_is_checked_off_the_event_loop_until_stopping() -> None:
    holder, stopping = Counting(), asyncio.Event()
    task = asyncio.create_task(holder.watch(stopping, every_s=0.01))
    while holder.checks < 3:
        await asyncio.sleep(0.01)
    stopping.set()
    await asyncio.wait_for(task, 1)
    assert threading.current_thread().name not in holder.threads


async def test_a_failing_check_is_logged_and_the_watching_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    holder, stopping = Counting(fail_first=2), asyncio.Event()
    with caplog.at_level(logging.ERROR, logger="accord.runtime.folder_watch"):
        task = asyncio.create_task(holder.watch(stopping, every_s=0.01))
        while holder.checks < 4:
            await asyncio.sleep(0.01)
        stopping.set()
        await asyncio.wait_for(task, 1)
    assert caplog.text.count("test folder check failed") == 2


async def test_the_background_hook_stops_with_the_runtime() -> None:
    holder = Counting()
    runtime = SimpleNamespace(stopping=asyncio.Event())
    task = asyncio.create_task(holder.watcher(every_s=0.01)(runtime))
    while holder.checks < 1:
        await asyncio.sleep(0.01)
    runtime.stopping.set()
    await asyncio.wait_for(task, 1)
    assert task.done()
