"""Every relative link of the README and the docs pages leads somewhere: the file exists,
and an ``#anchor`` names a heading of the page it points to."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from salesexec_assets_tests.docs_pages import (
    REPO_ROOT,
    anchors,
    github_anchor,
    pages,
    relative_links,
)


# Pages other branches are writing now; the README links them already. Once merged, each
# is checked like any other page (remove it from here then).
def broken_links(root: Path = REPO_ROOT) -> list[str]:
    """``page:line: target: what is wrong`` for each link that leads nowhere."""
    broken: list[str] = []
    for page in pages(root):
        for link in relative_links(page, root):
            path, _, anchor = link.target.partition("#")
            target = Path(os.path.normpath((root / page).parent / path if path else root / page))
            where = f"{link.page}:{link.line}: {link.target}"
            try:
                relative = target.relative_to(root)
            except ValueError:
                broken.append(f"{where}: outside the repository")
                continue
            if not target.exists():
                broken.append(f"{where}: no such file")
                continue
            if anchor and target.suffix == ".md" and anchor not in anchors(relative, root):
                broken.append(f"{where}: no heading with the anchor #{anchor}")
    return broken


def test_every_relative_link_and_anchor_of_the_readme_and_docs_exists() -> None:
    assert len(pages()) > 5
    assert sum(len(relative_links(page)) for page in pages()) > 30
    assert broken_links() == []


def test_the_readme_links_every_docs_page_and_deploying_in_one_click() -> None:
    readme_targets = {link.target.partition("#")[0] for link in relative_links(Path("README.md"))}
    docs_pages = {page.as_posix() for page in pages()[1:]}
    assert "docs/deploying.md" in readme_targets
    missing = docs_pages - readme_targets
    assert not missing, missing


def test_the_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    assert github_anchor("1. `salesexec probe`: one call per endpoint") == (
        "1-salesexec-probe-one-call-per-endpoint"
    )
    assert github_anchor("Try it (one command)") == "try-it-one-command"
    assert github_anchor("The fault suite, in figures") == "the-fault-suite-in-figures"
    shutil.copy(REPO_ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(REPO_ROOT / "docs", tmp_path / "docs")
    for entry in REPO_ROOT.iterdir():  # what the pages link to, besides themselves
        if entry.name not in ("README.md", "docs"):
            (tmp_path / entry.name).symlink_to(entry)
    assert broken_links(tmp_path) == []
    with (tmp_path / "docs" / "ui.md").open("a") as ui:
        ui.write("\nSee [gone](gone.md), [anchor](running.md#no-such-heading) and\n"
                 "[a wrapped\nlink](#nor-here).\n")  # fmt: skip
    broken = broken_links(tmp_path)
    assert len(broken) == 3, broken
    assert "gone.md: no such file" in broken[0]
    assert "running.md#no-such-heading: no heading with the anchor #no-such-heading" in broken[1]
    assert "#nor-here: no heading" in broken[2]
