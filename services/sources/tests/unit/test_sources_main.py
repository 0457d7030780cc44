"""The service refuses a sources file it cannot use with one line, before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.sources import main


def test_a_bad_sources_file_stops_the_service_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "sources.yaml"
    bad.write_text("sources:\n  - name: hr\n    kind: csv\n", encoding="utf-8")
    monkeypatch.setenv("ACCORD_SOURCES_FILE", str(bad))
    with pytest.raises(SystemExit) as stopped:
        main.main()
    message = str(stopped.value.code)
    assert message.startswith(f"accord-sources: ACCORD_SOURCES_FILE {bad}: ")
    assert "\n" not in message
    monkeypatch.setenv("ACCORD_SOURCES_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(SystemExit, match="No such file"):
        main.main()
