"""Every relative link in the documentation resolves: the file exists, and the anchor names a
heading of it (GitHub's anchors: the heading lower-cased, punctuation dropped, spaces as
hyphens, a repeated heading numbered -1, -2, ...).

The documentation is README.md, docs/*.md and each workspace member's README.md. Links to
other sites (https:, mailto:, ...) are not followed; code (fenced blocks and `spans`) holds
no links.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def documentation(root: Path) -> list[Path]:
    """README.md, docs/*.md and the workspace members' READMEs under `root`."""
    found = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    for group in ("libs", "services"):
        found += sorted((root / group).glob("*/README.md"))
    return [path for path in found if path.is_file()]


def _prose(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        opening = _FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (before numbering repeats)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors a markdown document offers: its headings' slugs and HTML anchors."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _prose(text):
        heading = _HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(_HTML_ANCHOR.findall(line))
    return found


def links(text: str) -> Iterator[tuple[int, str]]:
    """(line number, target) of each markdown link outside code."""
    for number, line in _prose(text):
        for match in _LINK.finditer(_CODE_SPAN.sub("code", line)):
            yield number, match.group(1)


def broken_links(paths: list[Path], root: Path) -> list[str]:
    """One line per relative link that does not resolve, naming where it is and why."""
    problems: list[str] = []
    cache: dict[Path, set[str]] = {}

    def anchors_of(path: Path) -> set[str]:
        if path not in cache:
            cache[path] = anchors(path.read_text())
        return cache[path]

    for path in paths:
        for number, target in links(path.read_text()):
            if not target or _SCHEME.match(target) or target.startswith("//"):
                continue
            where = f"{path.relative_to(root)}:{number}: {target}"
            file_part, _, fragment = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.is_relative_to(root.resolve()):
                problems.append(f"{where}: outside the repository")
            elif not linked.exists():
                problems.append(f"{where}: no such file")
            elif fragment and linked.suffix == ".md" and fragment not in anchors_of(linked):
                problems.append(f"{where}: no heading with anchor #{fragment}")
    return problems


def test_every_relative_link_and_anchor_of_the_documentation_resolves() -> None:
    paths = documentation(ROOT)
    assert ROOT / "README.md" in paths
    assert len(paths) >= 2
    assert broken_links(paths, ROOT) == []


def test_every_docs_page_is_on_the_readme_map() -> None:
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for _, target in links((ROOT / "README.md").read_text())
        if not _SCHEME.match(target)
    }
    unlisted = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert unlisted == []


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Two commands", "two-commands"),
        ("Trying it on `make run`", "trying-it-on-make-run"),
        (
            "Inbound SCIM 2.0: Okta, Entra ID and HR systems push identities",
            "inbound-scim-20-okta-entra-id-and-hr-systems-push-identities",
        ),
        ("The shape of a service (the target)", "the-shape-of-a-service-the-target"),
        ("Guards: import contracts and complexity", "guards-import-contracts-and-complexity"),
        ("Workflows (sagas)", "workflows-sagas"),
        ("See [the docs](docs/x.md) -> now", "see-the-docs---now"),
        ("ACCORD_BROKER and *emphasis*", "accord_broker-and-emphasis"),
    ],
)
def test_anchors_follow_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_a_broken_file_a_broken_anchor_and_an_escape_are_found(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## A section\n\n## A section\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Title\n\n"
        "[ok](docs/page.md) [ok](docs/page.md#a-section) [ok](docs/page.md#a-section-1)\n"
        "[ok](#title) [ok](docs) [ok](https://example.org/nowhere.md) ![ok](docs/page.md)\n"
        "[gone](docs/missing.md)\n"
        "[no anchor](docs/page.md#a-section-2)\n"
        "[no local anchor](#nothing)\n"
        "[out](../elsewhere.md)\n"
        "`[in code](docs/missing.md)`\n"
        "```\n[in a block](docs/missing.md)\n```\n"
    )
    assert broken_links(documentation(tmp_path), tmp_path) == [
        "README.md:5: docs/missing.md: no such file",
        "README.md:6: docs/page.md#a-section-2: no heading with anchor #a-section-2",
        "README.md:7: #nothing: no heading with anchor #nothing",
        "README.md:8: ../elsewhere.md: outside the repository",
    ]


def test_the_members_readmes_are_checked_too(tmp_path: Path) -> None:
    member = tmp_path / "libs" / "events"
    member.mkdir(parents=True)
    (tmp_path / "README.md").write_text("# Root\n")
    (member / "README.md").write_text("# Events\n\n[up](../../docs/none.md)\n")
    assert broken_links(documentation(tmp_path), tmp_path) == [
        "libs/events/README.md:3: ../../docs/none.md: no such file"
    ]
