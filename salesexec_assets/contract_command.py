"""``salesexec contract diff``: the API's Swagger document against the contract in effect.

Reads the document (a file, a URL, or by default the configured API's usual ASP.NET
locations, logged in when the document needs it), prints one line per difference and a
summary, and can write the overrides file it proposes. Exit status: 0 when everything
matches, 1 when something differs, 2 when the document cannot be read or is not
Swagger/OpenAPI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import requests

from salesexec_assets.api import contract
from salesexec_assets.api.client import SalesExecClient
from salesexec_assets.api.contract_diff import compare
from salesexec_assets.api.errors import SalesExecError
from salesexec_assets.api.overrides import (
    CONTRACT_OVERRIDES_VAR,
    OverridesError,
    dump_overrides,
    parse_overrides,
)
from salesexec_assets.api.swagger import (
    USUAL_DOCUMENT_PATHS,
    Document,
    DocumentError,
    parse_document_text,
    read_document,
)
from salesexec_assets.settings import SettingsError

AccountClient = Callable[[], AbstractContextManager[tuple[SalesExecClient, bool]]]
MATCH, DIFFERS, UNREADABLE = 0, 1, 2
DOCUMENT_TIMEOUT = (10.0, 60.0)


def read_source(source: str) -> Document:
    """A document from a file or an http(s) URL."""
    if source.startswith(("http://", "https://")):
        try:
            response = requests.get(source, timeout=DOCUMENT_TIMEOUT)
        except requests.RequestException as error:
            raise DocumentError(f"cannot fetch it: {type(error).__name__}") from None
        if response.status_code != 200:
            raise DocumentError(f"HTTP {response.status_code}")
        return parse_document_text(response.content)
    try:
        text = Path(source).read_bytes()
    except OSError as error:
        raise DocumentError(f"cannot read it: {error.strerror or error}") from None
    return parse_document_text(text)


def find_document(client: SalesExecClient) -> tuple[Document, str]:
    """The API's document at the usual locations, logged in if it asks for a login."""
    tried: list[str] = []
    for path in USUAL_DOCUMENT_PATHS:
        url = client.base_url + path
        try:
            response = requests.get(url, timeout=DOCUMENT_TIMEOUT)
        except requests.RequestException as error:
            raise DocumentError(f"cannot fetch {url}: {type(error).__name__}") from None
        if response.status_code in (401, 403):
            try:
                return read_document(client.get_document(path)), url
            except (SalesExecError, DocumentError) as error:
                tried.append(f"{path} (after login: {error})")
                continue
        if response.status_code != 200:
            tried.append(f"{path} (HTTP {response.status_code})")
            continue
        try:
            return parse_document_text(response.content), url
        except DocumentError as error:
            tried.append(f"{path} ({error})")
    raise DocumentError(
        f"no Swagger/OpenAPI document at {client.base_url}; tried {', '.join(tried)}"
    )


def run_diff(
    source: str | None, client: SalesExecClient | None, write_overrides: str | None
) -> int:
    """Compare, print, optionally write the proposed overrides; return the exit status."""
    overrides = contract.effective()
    try:
        if source is not None:
            document, where = read_source(source), source
        else:
            assert client is not None
            document, where = find_document(client)
    except DocumentError as error:
        print(f"error: cannot use the Swagger document {source or '(default)'}: {error}")
        return UNREADABLE
    comparison = compare(document, overrides)
    for difference in comparison.differences:
        print(difference.line)
    for note in comparison.notes:
        print(f"note: {note}")
    count = len(comparison.differences)
    print(
        f"summary: {count} difference(s) between {where} ({document.kind}) and the contract "
        f"in effect (overrides: {overrides.describe()}); {comparison.endpoints_compared} of "
        f"the contract's endpoints found; {comparison.confident_renames()} rename(s) can be "
        f"written as overrides; {len(comparison.notes)} note(s)"
    )
    if write_overrides:
        proposed, comments = comparison.proposed_overrides(overrides)
        header = [
            f"# Contract overrides proposed by `salesexec contract diff` from {where}.",
            f"# Review, then: export {CONTRACT_OVERRIDES_VAR}={write_overrides}",
        ]
        text = "\n".join(header) + "\n" + dump_overrides(proposed, comments)
        try:
            parse_overrides(proposed, write_overrides)
        except OverridesError as error:
            print(f"warning: the proposed overrides do not validate: {error}")
        Path(write_overrides).write_text(text, encoding="utf-8")
        print(
            f"wrote {write_overrides}: {sum(map(len, proposed.values()))} override(s), "
            f"{len(comments)} item(s) left for you as comments"
        )
    return DIFFERS if count else MATCH


def add_parser(
    commands: argparse._SubParsersAction,
    add_sandbox_flag: Callable[[argparse.ArgumentParser], None],
) -> None:
    """``salesexec contract diff [--swagger PATH_OR_URL] [--write-overrides FILE]
    [--sandbox]``."""
    parser = commands.add_parser("contract", help="compare the API's Swagger with the contract")
    actions = parser.add_subparsers(dest="contract_command", required=True)
    diff = actions.add_parser(
        "diff",
        help="one line per difference between the API's Swagger document and the contract "
        "in effect; exit 0 same, 1 different, 2 unreadable",
    )
    diff.add_argument(
        "--swagger",
        metavar="PATH_OR_URL",
        help="the document (default: the configured API's, at the usual ASP.NET locations)",
    )
    diff.add_argument(
        "--write-overrides",
        metavar="FILE",
        help="write the overrides file for the differences that map with confidence",
    )
    add_sandbox_flag(diff)


def main(args: argparse.Namespace, account_client: AccountClient) -> int:
    """The command: exit 2 also when the settings or the API cannot be used."""
    try:
        contract.effective()  # a broken overrides file: say so before reading anything
        if args.swagger:
            return run_diff(args.swagger, None, args.write_overrides)
        with account_client() as (client, sandbox_reason):
            if sandbox_reason:
                print(f"({sandbox_reason}: comparing the embedded sandbox's document)")
            return run_diff(None, client, args.write_overrides)
    except (OverridesError, SettingsError, SalesExecError) as error:
        print(f"error: {error}", file=sys.stderr)
        return UNREADABLE
