"""The docs read in order: a short README, and links that lead somewhere in the repo."""

from __future__ import annotations

import re

import pytest

from tests.configs import REPO

README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
#: A Markdown link or image: [text](target); the target up to a space or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
#: The settings table the SDK writes (--about); its links are the SDK's own.
SETTINGS_TABLE = re.compile(r"## Settings\n\n\|.*?\n\n", re.DOTALL)


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def links(path):
    """Every link target in ``path``, outside the generated settings table."""
    text = SETTINGS_TABLE.sub("", path.read_text())
    without_code = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return LINK.findall(without_code)


def test_readme_is_at_most_250_lines():
    assert len(README.read_text().splitlines()) <= 250


def test_docs_has_a_page_per_topic():
    names = {page.name for page in DOCS}
    assert {
        "incremental.md",
        "rate-limit-and-pages.md",
        "operating.md",
        "api-assumptions.md",
    } <= names


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_link_leads_to_a_file_or_heading_in_the_repo(page):
    for target in links(page):
        assert not re.match(r"[a-z]+:", target), f"{page.name} points outside: {target}"
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} leads nowhere"
        assert REPO in linked.parents or linked == REPO, f"{page.name}: {target}"
        if anchor:
            assert anchor in anchors(linked.read_text()), f"{page.name}: {target}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {target.partition("#")[0] for target in links(README)}
    for page in DOCS:
        assert f"docs/{page.name}" in linked, page.name
