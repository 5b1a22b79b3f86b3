"""The few API steps every hand-written contender shares: login, lead types, page params.

Only the contract's names are used (``salesexec_assets.api.contract``), so the
contenders follow the contract if it is corrected.
"""

from __future__ import annotations

import requests

from benchmarks.workload import Window, Workload
from salesexec_assets.api import contract


def login(session: requests.Session, workload: Workload) -> str:
    """POST /api/Authenticate; the session carries the AuthToken header from now on."""
    answer = session.post(
        workload.base_url + contract.AUTHENTICATE_PATH,
        json={
            contract.LOGIN_USERNAME: workload.username,
            contract.LOGIN_PASSWORD: workload.password,
        },
        timeout=30,
    )
    answer.raise_for_status()
    token: str = answer.json()[contract.LOGIN_TOKEN]
    session.headers[contract.AUTH_HEADER] = token
    return token


def lead_type_uids(session: requests.Session, workload: Workload) -> list[int]:
    """The workload's lead types: every lead type of the account (one page holds them all
    in the sandbox), or those it names."""
    answer = session.get(
        workload.base_url + contract.LEAD_TYPES_PATH,
        params={contract.PARAM_SKIP: 0, contract.PARAM_TAKE: contract.TAKE_MAX},
        timeout=30,
    )
    answer.raise_for_status()
    uids = [int(row[contract.LEAD_TYPE_UID]) for row in answer.json()[contract.ENVELOPE_RESULTS]]
    wanted = workload.lead_type_uids
    return uids if wanted is None else [uid for uid in uids if uid in wanted]


def page_params(lead_type_uid: int, window: Window, skip: int, take: int) -> dict[str, object]:
    """The query of one report page."""
    return {
        contract.PARAM_LEAD_TYPE: lead_type_uid,
        contract.PARAM_START: window.start_text,
        contract.PARAM_END: window.end_text,
        contract.PARAM_SKIP: skip,
        contract.PARAM_TAKE: take,
    }
