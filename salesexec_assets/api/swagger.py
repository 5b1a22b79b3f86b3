"""Swagger documents: the contract's own (generated), and anyone's (read).

:func:`contract_document` writes the contract in effect as a Swagger 2.0 document, the
kind an ASP.NET Web API serves (Swashbuckle, at ``/swagger/docs/v1``); the sandbox
serves it. :func:`read_document` reads a Swagger 2.0 or OpenAPI 3.x document into
:class:`Operation` values with the types the contract speaks of, which is what
``salesexec contract diff`` compares.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from salesexec_assets.api import contract
from salesexec_assets.api.contract import FieldType
from salesexec_assets.api.endpoints import ENDPOINTS, ENVELOPE, Endpoint
from salesexec_assets.api.overrides import NO_OVERRIDES, ContractOverrides

SWAGGER_PATH = "/swagger/docs/v1"
# Where ASP.NET Web API projects usually serve their document (Swashbuckle 5, then 6+).
USUAL_DOCUMENT_PATHS = (
    SWAGGER_PATH,
    "/swagger/v1/swagger.json",
    "/swagger/docs/v2",
    "/swagger.json",
    "/openapi.json",
)

SCHEMA_OF_TYPE: dict[FieldType, dict[str, Any]] = {
    FieldType.INTEGER: {"type": "integer", "format": "int64"},
    FieldType.TEXT: {"type": "string"},
    FieldType.TIMESTAMP: {"type": "string", "format": "date-time"},
    FieldType.OBJECT: {"type": "object", "additionalProperties": {}},
}


class DocumentError(ValueError):
    """The document is not JSON, or not Swagger 2.0 / OpenAPI 3.x."""


# --- the contract's own document -----------------------------------------------------------
def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _object_schema(
    fields: Mapping[str, FieldType], overrides: ContractOverrides
) -> dict[str, Any]:
    properties = {overrides.api_field(name): SCHEMA_OF_TYPE[kind] for name, kind in fields.items()}
    return {"type": "object", "properties": properties}


def _operation(
    endpoint: Endpoint, overrides: ContractOverrides, definitions: dict[str, Any]
) -> dict[str, Any]:
    record_name = f"{_camel(endpoint.name)}Record"
    definitions[record_name] = _object_schema(endpoint.record, overrides)
    answer: dict[str, Any] = {"$ref": f"#/definitions/{record_name}"}
    if endpoint.paged:
        page_name = f"{_camel(endpoint.name)}Page"
        page = _object_schema(ENVELOPE, overrides)
        page["properties"][overrides.api_field(contract.ENVELOPE_RESULTS)] = {
            "type": "array",
            "items": answer,
        }
        definitions[page_name] = page
        answer = {"$ref": f"#/definitions/{page_name}"}
    parameters: list[dict[str, Any]] = [
        {
            "name": overrides.api_parameter(parameter.name),
            "in": parameter.place,
            "required": parameter.required,
            **SCHEMA_OF_TYPE[parameter.type],
        }
        for parameter in endpoint.parameters
    ]
    if endpoint.body is not None:
        body_name = f"{_camel(endpoint.name)}Request"
        definitions[body_name] = _object_schema(endpoint.body, overrides)
        definitions[body_name]["required"] = [overrides.api_field(name) for name in endpoint.body]
        parameters.append(
            {
                "name": "request",
                "in": "body",
                "required": True,
                "schema": {"$ref": f"#/definitions/{body_name}"},
            }
        )
    operation: dict[str, Any] = {
        "operationId": _camel(endpoint.name),
        "tags": [_camel(endpoint.name)],
        "produces": ["application/json"],
        "parameters": parameters,
        "responses": {
            "200": {"description": "OK", "schema": answer},
            "400": {"description": "The request is invalid."},
            "401": {"description": "Authorization has been denied for this request."},
        },
    }
    if endpoint.body is None:
        operation["security"] = [{contract.AUTH_HEADER: []}]
    return operation


def contract_document(overrides: ContractOverrides = NO_OVERRIDES) -> dict[str, Any]:
    """The contract in effect as a Swagger 2.0 document (one source: the contract)."""
    definitions: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for endpoint in ENDPOINTS:
        operation = _operation(endpoint, overrides, definitions)
        paths.setdefault(overrides.path(endpoint.name), {})[endpoint.method.lower()] = operation
    return {
        "swagger": "2.0",
        "info": {"title": "SalesExec REST API (the project's working contract)", "version": "v1"},
        "basePath": "/",
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {
            contract.AUTH_HEADER: {"type": "apiKey", "name": contract.AUTH_HEADER, "in": "header"}
        },
        "paths": paths,
        "definitions": definitions,
    }


# --- reading a document ----------------------------------------------------------------------
@dataclass(frozen=True)
class DocParameter:
    """A parameter as a document declares it; ``type`` as the contract speaks of types."""

    name: str
    place: str
    required: bool
    type: str


@dataclass
class Operation:
    """One operation of a document, reduced to what the contract compares."""

    method: str
    path: str
    parameters: list[DocParameter] = field(default_factory=list)
    body: dict[str, str] | None = None  # the JSON body's fields and types
    answer: dict[str, str] = field(default_factory=dict)  # the 200 answer's fields and types
    records: dict[str, str] | None = None  # the items of the answer's list field, if any
    records_field: str | None = None  # the name of that list field


@dataclass
class Document:
    """A document's operations, and what kind of document it was."""

    kind: str  # "Swagger 2.0" or "OpenAPI 3.x"
    operations: list[Operation]


def parse_document_text(text: str | bytes) -> Document:
    """A document from its JSON text; :class:`DocumentError` when it is not one."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise DocumentError(f"not JSON ({error})") from None
    return read_document(data)


def read_document(data: Any) -> Document:
    """A Swagger 2.0 or OpenAPI 3.x document's operations."""
    if not isinstance(data, dict):
        raise DocumentError(f"not a Swagger/OpenAPI document (a JSON {type(data).__name__})")
    version = str(data.get("swagger") or data.get("openapi") or "")
    if not (version.startswith("2.") or version.startswith("3.")) or not isinstance(
        data.get("paths"), dict
    ):
        raise DocumentError(
            "not a Swagger 2.0 or OpenAPI 3.x document (no 'swagger: 2.x' or 'openapi: 3.x' "
            "with 'paths')"
        )
    reader = _Reader(data, openapi3=version.startswith("3."))
    operations = [
        reader.operation(method, path, item)
        for path, methods in data["paths"].items()
        if isinstance(methods, dict)
        for method, item in methods.items()
        if method.lower() in {"get", "post", "put", "patch", "delete"} and isinstance(item, dict)
    ]
    kind = "OpenAPI " + version if version.startswith("3.") else "Swagger " + version
    return Document(kind, operations)


class _Reader:
    """Resolves references and types within one document."""

    def __init__(self, data: dict[str, Any], openapi3: bool) -> None:
        self.data = data
        self.openapi3 = openapi3

    def resolve(self, node: Any, depth: int = 0) -> dict[str, Any]:
        while isinstance(node, dict) and "$ref" in node and depth < 20:
            target: Any = self.data
            for part in str(node["$ref"]).lstrip("#/").split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            node, depth = target, depth + 1
        if isinstance(node, dict) and isinstance(node.get("allOf"), list):
            merged: dict[str, Any] = {"type": "object", "properties": {}}
            for part in node["allOf"]:
                resolved = self.resolve(part, depth + 1)
                merged["properties"].update(resolved.get("properties") or {})
            return merged
        return node if isinstance(node, dict) else {}

    def type_of(self, schema: Any) -> str:
        schema = self.resolve(schema)
        kind = schema.get("type")
        if isinstance(kind, list):  # OpenAPI 3.1: ["string", "null"]
            kind = next((k for k in kind if k != "null"), None)
        if kind == "integer":
            return FieldType.INTEGER.value
        if kind == "string":
            date_like = schema.get("format") in {"date-time", "date"}
            return FieldType.TIMESTAMP.value if date_like else FieldType.TEXT.value
        if kind == "object" or "properties" in schema or "additionalProperties" in schema:
            return FieldType.OBJECT.value
        return str(kind or "unknown")

    def fields(self, schema: Any) -> dict[str, str]:
        properties = self.resolve(schema).get("properties") or {}
        return {str(name): self.type_of(value) for name, value in properties.items()}

    def _parameter_type(self, parameter: dict[str, Any]) -> str:
        return self.type_of(parameter.get("schema") if self.openapi3 else parameter)

    def _json_schema(self, holder: dict[str, Any]) -> Any:
        """The schema of a response or request body, in either version."""
        if not self.openapi3:
            return holder.get("schema")
        content = holder.get("content") or {}
        chosen = content.get("application/json") or next(iter(content.values()), {})
        return chosen.get("schema") if isinstance(chosen, dict) else None

    def operation(self, method: str, path: str, item: dict[str, Any]) -> Operation:
        operation = Operation(method.upper(), path)
        shared = self.data["paths"][path].get("parameters") or []
        for raw in [*shared, *(item.get("parameters") or [])]:
            parameter = self.resolve(raw)
            place = str(parameter.get("in", ""))
            if place == "body":
                operation.body = self.fields(parameter.get("schema"))
                continue
            operation.parameters.append(
                DocParameter(
                    str(parameter.get("name", "")),
                    place,
                    bool(parameter.get("required", place == "path")),
                    self._parameter_type(parameter),
                )
            )
        if self.openapi3 and isinstance(item.get("requestBody"), dict):
            operation.body = self.fields(self._json_schema(self.resolve(item["requestBody"])))
        responses = item.get("responses") or {}
        ok = responses.get("200") or responses.get(200) or {}
        answer = self.resolve(self._json_schema(self.resolve(ok)))
        if answer.get("type") == "array":  # a bare list: its items are the records
            operation.records = self.fields(answer.get("items"))
            return operation
        operation.answer = self.fields(answer)
        for name, value in (answer.get("properties") or {}).items():
            resolved = self.resolve(value)
            if resolved.get("type") == "array":
                operation.records_field = str(name)
                operation.records = self.fields(resolved.get("items"))
                break
        return operation
