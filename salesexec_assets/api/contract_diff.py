"""Compare a Swagger/OpenAPI document with the contract in effect, and propose overrides.

For login, lead types and each report: the path and method, each query parameter (name,
place, required), the JSON body, the list envelope and every record field (name, type).
A name the document lacks is paired with the document's closest unmatched name when
there is a likely one; a pairing is *confident* (written to an overrides file) when the
names differ only in case, when it is the one unmatched name of the same type, when it
sits at the same position with the same type, or when ``difflib`` finds it clearly
closest. Everything else is left to a person, as a comment.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from salesexec_assets.api import contract
from salesexec_assets.api.contract import FieldType
from salesexec_assets.api.endpoints import ENDPOINTS, ENVELOPE, Endpoint
from salesexec_assets.api.overrides import ContractOverrides
from salesexec_assets.api.swagger import Document, Operation

CLOSE_RATIO = 0.8  # difflib ratio of a confident pairing by spelling
LIKELY_RATIO = 0.5  # ... of a pairing worth mentioning


@dataclass(frozen=True)
class Rename:
    """A candidate override: the document calls a contract name ``value``."""

    section: str  # paths, parameters or fields
    key: str  # the contract's name (an endpoint's name, for paths)
    value: str  # the document's name
    where: str
    confident: bool


@dataclass
class Difference:
    """One line of the comparison, and the override that would settle it, if any."""

    line: str
    rename: Rename | None = None


@dataclass
class Comparison:
    """Everything one comparison found."""

    kind: str  # the document's kind
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # harmless: extra optional names
    endpoints_compared: int = 0

    @property
    def renames(self) -> list[Rename]:
        return [d.rename for d in self.differences if d.rename is not None]

    def proposed_overrides(
        self, current: ContractOverrides
    ) -> tuple[dict[str, dict[str, str]], list[str]]:
        """The overrides file this comparison proposes: the current overrides plus the
        confident renames; and, as comments, what a person must decide."""
        sections = {name: dict(entries) for name, entries in current.as_dict().items()}
        comments: list[str] = []
        by_key: dict[tuple[str, str], list[Rename]] = {}
        for rename in self.renames:
            by_key.setdefault((rename.section, rename.key), []).append(rename)
        for (section, key), renames in by_key.items():
            values = {rename.value for rename in renames}
            places = ", ".join(sorted({rename.where for rename in renames}))
            if len(values) == 1 and all(rename.confident for rename in renames):
                value = values.pop()
                entries = sections.setdefault(section, {})
                if value == key:
                    entries.pop(key, None)
                else:
                    entries[key] = value
            else:
                comments.append(
                    f"{section}.{key}: maybe {' or '.join(sorted(values))} ({places}); not sure, "
                    "decide and add it above"
                )
        comments.extend(f"not mapped: {d.line}" for d in self.differences if d.rename is None)
        return {name: entries for name, entries in sections.items() if entries}, comments

    def confident_renames(self) -> int:
        return len({(r.section, r.key) for r in self.renames if r.confident})


def _route_key(path: str) -> str:
    return path.rstrip("/").lower()


def _words(path: str) -> frozenset[str]:
    """A path's words, case and order aside: ``/api/Leads/Closed`` ~ ``/api/ClosedLeads``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", path)
    return frozenset(word for word in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if word) - {
        "api"
    }


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio()


def pair(
    wanted: str,
    wanted_type: str | None,
    position: int,
    candidates: Sequence[tuple[str, str | None]],
    positions: Mapping[str, int],
) -> tuple[str | None, bool]:
    """The closest of ``candidates`` (name, type) to ``wanted``, and whether it is sure.

    Sure: the same name but for case; the one candidate of the same type; the one of the
    same type at the same position; a spelling ``difflib`` finds clearly closest. Else the
    likeliest by spelling, or of the same type, unsure; or None.
    """
    if not candidates:
        return None, False
    for name, _ in candidates:
        if name.lower() == wanted.lower():
            return name, True
    same_type = [name for name, kind in candidates if kind == wanted_type]
    if len(same_type) == 1:
        return same_type[0], True
    at_position = [name for name in same_type if positions.get(name) == position]
    if len(at_position) == 1:
        return at_position[0], True
    ranked = sorted(candidates, key=lambda item: _ratio(wanted, item[0]), reverse=True)
    best = ranked[0][0]
    best_ratio = _ratio(wanted, best)
    runner_up = _ratio(wanted, ranked[1][0]) if len(ranked) > 1 else 0.0
    if best_ratio >= CLOSE_RATIO and best_ratio - runner_up >= 0.1:
        return best, True
    if best_ratio >= LIKELY_RATIO:
        return best, False
    ranked_same_type = [name for name, _ in ranked if name in same_type]
    return (ranked_same_type[0], False) if ranked_same_type else (None, False)


class _Comparer:
    def __init__(self, document: Document, overrides: ContractOverrides) -> None:
        self.document = document
        self.overrides = overrides
        self.result = Comparison(document.kind)
        self.present_as_is: set[tuple[str, str]] = set()  # (section, name) found unrenamed

    def differ(
        self, where: str, text: str, closest: str | None = None, rename: Rename | None = None
    ) -> None:
        suffix = f" (closest: {closest})" if closest else ""
        self.result.differences.append(Difference(f"{where}: {text}{suffix}", rename))

    def run(self) -> Comparison:
        operations = {(_route_key(op.path), op.method): op for op in self.document.operations}
        matched: dict[str, Operation] = {}
        for endpoint in ENDPOINTS:
            op = operations.get((_route_key(self.overrides.path(endpoint.name)), endpoint.method))
            if op is not None:
                matched[endpoint.name] = op
        used = {id(op) for op in matched.values()}
        unmatched = [op for op in self.document.operations if id(op) not in used]
        for endpoint in ENDPOINTS:
            op = matched.get(endpoint.name) or self._renamed_path(endpoint, unmatched)
            if op is not None:
                self.result.endpoints_compared += 1
                self._operation(endpoint, op)
        self._drop_unsure_global_renames()
        return self.result

    def _renamed_path(self, endpoint: Endpoint, unmatched: list[Operation]) -> Operation | None:
        path = self.overrides.path(endpoint.name)
        where = endpoint.name
        methods = sorted(
            op.method for op in self.document.operations if _route_key(op.path) == _route_key(path)
        )
        if methods:
            self.differ(where, f"{path} answers {', '.join(methods)}, not {endpoint.method}")
            return None
        candidates = [op for op in unmatched if op.method == endpoint.method]
        same_words = [op for op in candidates if _words(op.path) == _words(path)]
        best: Operation | None = None
        confident = False
        same_shape = [op for op in candidates if self._same_shape(endpoint, op)]
        if len(same_words) == 1:
            best, confident = same_words[0], True
        elif len(same_shape) == 1:
            best, confident = same_shape[0], True
        elif candidates:
            ranked = sorted(candidates, key=lambda op: _ratio(path, op.path), reverse=True)
            best = ranked[0]
            ratio = _ratio(path, best.path)
            confident = ratio >= CLOSE_RATIO and (
                len(ranked) == 1 or ratio - _ratio(path, ranked[1].path) >= 0.1
            )
            if ratio < LIKELY_RATIO:
                best = None
        closest = f"{best.method} {best.path}" if best else None
        rename = Rename("paths", endpoint.name, best.path, where, confident) if best else None
        self.differ(where, f"path {endpoint.method} {path} is not in the document", closest, rename)
        return best if confident else None

    def _same_shape(self, endpoint: Endpoint, op: Operation) -> bool:
        """Whether ``op`` answers what ``endpoint`` does: most of its record's names."""
        declared = op.records if endpoint.paged else op.answer
        if declared is None or (op.records_field is not None) != endpoint.paged:
            return False
        expected = {self.overrides.api_field(name) for name in endpoint.record}
        return len(expected & set(declared)) * 2 >= len(expected)

    def _operation(self, endpoint: Endpoint, op: Operation) -> None:
        where = endpoint.name
        self._parameters(endpoint, op)
        if endpoint.body is not None:
            if op.body is None:
                self.differ(where, "the document declares no JSON body for the login")
            else:
                self._fields(where, "body field", endpoint.body, op.body)
        if endpoint.paged:
            self._envelope(endpoint, op)
        else:
            self._fields(where, "answer field", endpoint.record, op.answer)

    def _envelope(self, endpoint: Endpoint, op: Operation) -> None:
        where = endpoint.name
        if op.records is None or op.records_field is None:
            self.differ(where, "the answer is not a list envelope (no list of records in it)")
            return
        results = self.overrides.api_field(contract.ENVELOPE_RESULTS)
        if op.records_field != results:
            self.differ(
                where,
                f"envelope field {results} (the records) is not in the document",
                op.records_field,
                Rename("fields", contract.ENVELOPE_RESULTS, op.records_field, where, True),
            )
        scalars = {name: kind for name, kind in op.answer.items() if name != op.records_field}
        self._fields(where, "envelope field", ENVELOPE, scalars)
        self._fields(where, "record field", endpoint.record, op.records)

    def _parameters(self, endpoint: Endpoint, op: Operation) -> None:
        where = endpoint.name
        declared = {
            p.name: p
            for p in op.parameters
            if not (p.place == "header" and p.name.lower() == contract.AUTH_HEADER.lower())
        }
        positions = {name: index for index, name in enumerate(declared)}
        expected = {self.overrides.api_parameter(p.name): p for p in endpoint.parameters}
        extras = [(name, p.type) for name, p in declared.items() if name not in expected]
        paired: set[str] = set()
        for index, (api_name, parameter) in enumerate(expected.items()):
            label = _label(api_name, parameter.name)
            found = declared.get(api_name)
            if found is None:
                candidates = [item for item in extras if item[0] not in paired]
                closest, confident = pair(
                    api_name, parameter.type.value, index, candidates, positions
                )
                required = "required" if parameter.required else "optional"
                rename = None
                if closest:
                    rename = Rename("parameters", parameter.name, closest, where, confident)
                if confident:
                    paired.add(closest)
                self.differ(
                    where,
                    f"{parameter.place} parameter {label} ({required}) is not in the document",
                    closest,
                    rename,
                )
                continue
            if api_name == parameter.name:
                self.present_as_is.add(("parameters", parameter.name))
            if found.place != parameter.place:
                self.differ(where, f"parameter {label} is in {found.place}, not {parameter.place}")
            if found.required != parameter.required:
                says = "required" if found.required else "optional"
                self.differ(
                    where,
                    f"parameter {label} is {says} in the document, "
                    f"{'required' if parameter.required else 'optional'} in the contract",
                )
        for name, _ in extras:
            if name in paired:
                continue
            if declared[name].required:
                text = f"the document requires parameter {name}, which the contract never sends"
                self.differ(where, text)
            else:
                self.result.notes.append(f"{where}: optional parameter {name} is not used")

    def _fields(
        self,
        where: str,
        what: str,
        expected: Mapping[str, FieldType],
        declared: Mapping[str, str],
    ) -> None:
        api_field = self.overrides.api_field
        api_names = {api_field(name): (name, kind) for name, kind in expected.items()}
        extras = [(name, kind) for name, kind in declared.items() if name not in api_names]
        positions = {name: index for index, name in enumerate(declared)}
        paired: set[str] = set()
        for index, (api_name, (name, kind)) in enumerate(api_names.items()):
            label = _label(api_name, name)
            found = declared.get(api_name)
            if found is None:
                candidates = [item for item in extras if item[0] not in paired]
                closest, confident = pair(api_name, kind.value, index, candidates, positions)
                rename = None
                if closest:
                    rename = Rename("fields", name, closest, where, confident)
                if confident:
                    paired.add(closest)
                text = f"{what} {label} ({kind.value}) is not in the document"
                self.differ(where, text, closest, rename)
                continue
            if api_name == name:
                self.present_as_is.add(("fields", name))
            if found != kind.value:
                text = f"{what} {label} is {found} in the document, {kind.value} in the contract"
                self.differ(where, text)
        for name, kind in extras:
            if name not in paired:
                self.result.notes.append(f"{where}: {what} {name} ({kind}) is not read")

    def _drop_unsure_global_renames(self) -> None:
        """A parameter or field rename applies everywhere: where the document still uses the
        contract's name somewhere, renaming it would break that place."""
        for difference in self.result.differences:
            rename = difference.rename
            if rename is not None and (rename.section, rename.key) in self.present_as_is:
                difference.rename = Rename(
                    rename.section, rename.key, rename.value, rename.where, False
                )


def _label(api_name: str, contract_name: str) -> str:
    return api_name if api_name == contract_name else f"{api_name} (contract {contract_name})"


def compare(document: Document, overrides: ContractOverrides) -> Comparison:
    """Every difference between ``document`` and the contract as ``overrides`` amend it."""
    return _Comparer(document, overrides).run()
