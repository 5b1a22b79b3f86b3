"""The names the sandbox speaks, and the Swagger document that says so.

By default the sandbox speaks the contract. Given contract overrides
(``salesexec-sandbox --contract-overrides FILE``) it speaks that dialect instead, as a
real API whose names differ would: the renamed paths, parameters and fields are the only
ones it knows, so a client that still uses the contract's names is refused (404 for a
path, 400 "the parameter ... is required" for a parameter). The endpoints themselves
(:class:`~salesexec_assets.sandbox.app.SandboxApp`) keep speaking the contract; this
layer renames requests on the way in and answers on the way out.

``GET /swagger/docs/v1`` answers the Swagger 2.0 document generated from the contract in
the same dialect, so the document and the API never disagree (to a logged-in caller
only, when the server is told that the document needs a login).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from salesexec_assets.api.contract import ERROR_MESSAGE
from salesexec_assets.api.endpoints import ENDPOINTS_BY_NAME
from salesexec_assets.api.overrides import NO_OVERRIDES, ContractOverrides, api_message
from salesexec_assets.api.swagger import SWAGGER_PATH, contract_document
from salesexec_assets.sandbox.app import DENIED_MESSAGE, _route_key, not_found
from salesexec_assets.sandbox.messages import Request, Response, error_response, json_response

Handler = Callable[[Request], Response]


def _contract_names(
    names: Mapping[str, Any],
    contract_name_of: Callable[[str], str | None],
    renamed: Mapping[str, str],
) -> dict[str, Any]:
    """``names`` under the contract's names; a contract name the dialect renamed is
    unknown to it, so it is dropped."""
    result: dict[str, Any] = {}
    for name, value in names.items():
        contract_name = contract_name_of(name)
        if contract_name is not None:
            result[contract_name] = value
        elif name not in renamed:
            result[name] = value
    return result


class Dialect:
    """Renames between an API dialect and the contract, around the sandbox's endpoints."""

    def __init__(
        self,
        overrides: ContractOverrides = NO_OVERRIDES,
        document_login: Callable[[Request], bool] | None = None,
    ) -> None:
        self.overrides = overrides
        self._document_login = document_login  # None: the document is public
        document = json.dumps(contract_document(overrides), indent=1)
        self._document = json_response(200, document)
        # the contract's paths of the renamed endpoints: this API has other names for them
        self._renamed_away = {_route_key(ENDPOINTS_BY_NAME[name].path) for name in overrides.paths}
        self._field_of_api = {api: name for name, api in overrides.fields.items()}

    def handle(self, request: Request, endpoints: Handler) -> Response:
        """Answer ``request`` in the dialect, with ``endpoints`` answering in the contract."""
        if _route_key(request.path) == _route_key(SWAGGER_PATH) and request.method == "GET":
            if self._document_login is not None and not self._document_login(request):
                return error_response(401, DENIED_MESSAGE)
            return self._document
        if self.overrides.empty:
            return endpoints(request)
        translated = self._to_contract(request)
        if translated is None:
            return not_found(request.path)
        return self._to_api(endpoints(translated))

    def _to_contract(self, request: Request) -> Request | None:
        overrides = self.overrides
        path = overrides.contract_path(request.path)
        if path is None:
            if _route_key(request.path) in self._renamed_away:
                return None
            path = request.path
        query = _contract_names(request.query, overrides.contract_parameter, overrides.parameters)
        body = request.body
        if body:
            try:
                payload = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                payload = None
            if isinstance(payload, dict):
                renamed = _contract_names(payload, self._field_of_api.get, overrides.fields)
                body = json.dumps(renamed).encode("utf-8")
        return Request(request.method, path, query, request.headers, body)

    def _to_api(self, response: Response) -> Response:
        try:
            payload = json.loads(response.body)
        except ValueError:
            return response
        payload = self.overrides.api_payload(payload)
        message_field = self.overrides.api_field(ERROR_MESSAGE)
        if isinstance(payload, dict) and isinstance(payload.get(message_field), str):
            payload[message_field] = api_message(self.overrides, payload[message_field])
        return Response(response.status, json.dumps(payload).encode("utf-8"), response.headers)

