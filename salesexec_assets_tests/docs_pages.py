"""The README and the ``docs/`` pages as the tests read them: their shell blocks, their
relative links and their headings' anchors (GitHub's rules), nothing rendered."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = ("bash", "sh", "shell")

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(?P<text>.+?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"`[^`]*`")


def pages(root: Path = REPO_ROOT) -> list[Path]:
    """README.md and every docs/*.md, as paths relative to the repository root."""
    return [Path("README.md"), *sorted(p.relative_to(root) for p in (root / "docs").glob("*.md"))]


@dataclass(frozen=True)
class ShellBlock:
    page: str  # "README.md", "docs/running.md"
    key: str  # the first command line (", 2nd" etc. when it repeats in the page)
    line: int  # 1-based line of the opening fence
    text: str  # dedented body


Blocks = list[tuple[int, str, str]]
ProseLines = list[tuple[int, str]]


def _split(page: Path, root: Path = REPO_ROOT) -> tuple[Blocks, ProseLines]:
    """Fenced blocks (line, language, dedented body) and the prose lines outside them."""
    blocks: Blocks = []
    prose: ProseLines = []
    lines = (root / page).read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            prose.append((index + 1, lines[index]))
            index += 1
            continue
        fence = opening["fence"]
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            body.append(lines[end])
            end += 1
        blocks.append((index + 1, opening["lang"], textwrap.dedent("\n".join(body)) + "\n"))
        index = end + 1
    return blocks, prose


def first_command(text: str) -> str:
    """The block's first command: its first line that is not blank and not a comment,
    with its continuation lines (``\\``) joined, spaces collapsed, a trailing comment
    dropped."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        command = [line]
        while command[-1].rstrip().endswith("\\") and index + len(command) < len(lines):
            command[-1] = command[-1].rstrip()[:-1]
            command.append(lines[index + len(command)])
        joined = " ".join(" ".join(command).split())
        return re.sub(r"\s+#\s.*$", "", joined)
    return ""


def shell_blocks(root: Path = REPO_ROOT) -> list[ShellBlock]:
    """Every fenced bash / sh / shell block of the README and the docs pages."""
    found: list[ShellBlock] = []
    for page in pages(root):
        blocks, _ = _split(page, root)
        seen: dict[str, int] = {}
        for line, lang, text in blocks:
            if lang not in SHELL_LANGUAGES:
                continue
            command = first_command(text)
            seen[command] = seen.get(command, 0) + 1
            key = command if seen[command] == 1 else f"{command} (block {seen[command]})"
            found.append(ShellBlock(page.as_posix(), key, line, text))
    return found


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lower case, punctuation removed,
    spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path, root: Path = REPO_ROOT) -> set[str]:
    """The anchors of a page's headings (a repeated heading gets ``-1``, ``-2``, ...)."""
    _, prose = _split(page, root)
    counts: dict[str, int] = {}
    result: set[str] = set()
    for _, line in prose:
        heading = _HEADING.match(line)
        if not heading:
            continue
        anchor = github_anchor(heading["text"])
        n = counts.get(anchor, 0)
        counts[anchor] = n + 1
        result.add(anchor if n == 0 else f"{anchor}-{n}")
    return result


@dataclass(frozen=True)
class Link:
    page: str
    line: int
    target: str


def relative_links(page: Path, root: Path = REPO_ROOT) -> list[Link]:
    """The page's links and images that point into the repository (not http, mailto),
    outside code; a link's text may wrap over lines."""
    _, prose = _split(page, root)
    lines = dict(prose)
    last = max(lines, default=0)
    text = "\n".join(lines.get(n, "") for n in range(1, last + 1))  # code blocks blanked
    text = _INLINE_CODE.sub(lambda code: re.sub(r"[^\n]", " ", code[0]), text)
    links: list[Link] = []
    for match in _LINK.finditer(text):
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        links.append(Link(page.as_posix(), text.count("\n", 0, match.start()) + 1, target))
    return links
