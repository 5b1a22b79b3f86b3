"""SALESEXEC_* variables are validated at load, with errors that name the variable."""

from datetime import date

import pytest

from salesexec_assets.resources import SalesExecResource
from salesexec_assets.settings import SettingsError, load_settings


def test_no_variables_mean_the_embedded_sandbox_with_utc_days() -> None:
    settings = load_settings({})
    assert settings.uses_embedded_sandbox
    assert settings.timezone == "UTC"
    assert settings.start_date == date(2024, 1, 1)
    assert settings.lead_type_uids is None


def test_credentials_without_a_url_mean_the_real_api() -> None:
    settings = load_settings({"SALESEXEC_USERNAME": "u", "SALESEXEC_PASSWORD": "p"})
    assert not settings.uses_embedded_sandbox


def test_lead_type_uids_are_parsed_and_deduplicated() -> None:
    assert load_settings({"SALESEXEC_LEAD_TYPE_UIDS": " 3, 1,3 "}).lead_type_uids == (3, 1)


@pytest.mark.parametrize(
    ("environ", "named", "value"),
    [
        ({"SALESEXEC_TIMEZONE": "Mars/Olympus"}, "SALESEXEC_TIMEZONE", "'Mars/Olympus'"),
        ({"SALESEXEC_START_DATE": "01/02/2024"}, "SALESEXEC_START_DATE", "'01/02/2024'"),
        ({"SALESEXEC_START_DATE": "2999-01-01"}, "SALESEXEC_START_DATE", "2999-01-01"),
        ({"SALESEXEC_LEAD_TYPE_UIDS": "1,two"}, "SALESEXEC_LEAD_TYPE_UIDS", "'two'"),
        ({"SALESEXEC_LEAD_TYPE_UIDS": "-4"}, "SALESEXEC_LEAD_TYPE_UIDS", "'-4'"),
        ({"SALESEXEC_LEAD_TYPE_UIDS": "0"}, "SALESEXEC_LEAD_TYPE_UIDS", "'0'"),
        # a credential's value is never shown: the message names the missing one
        ({"SALESEXEC_USERNAME": "u"}, "SALESEXEC_PASSWORD is not set", None),
        ({"SALESEXEC_PASSWORD": "p"}, "SALESEXEC_USERNAME is not set", None),
        ({"SALESEXEC_BASE_URL": "ftp://x"}, "SALESEXEC_BASE_URL", "'ftp://x'"),
        ({"SALESEXEC_BASE_URL": "https://api.example"}, "SALESEXEC_USERNAME", "api.example"),
    ],
)
def test_a_malformed_value_is_an_error_naming_the_variable_and_its_value(
    environ: dict[str, str], named: str, value: str | None
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    message = str(raised.value)
    assert named in message
    if value is not None:
        assert value in message
    else:  # the credential given is not echoed either
        assert not [given for given in environ.values() if f"'{given}'" in message]


def test_a_password_never_shows_in_errors() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"SALESEXEC_PASSWORD": "pw-do-not-show"})
    assert "pw-do-not-show" not in str(raised.value)


def test_the_resource_repr_masks_the_password() -> None:
    resource = SalesExecResource(base_url="http://x", username="u", password="pw-do-not-show")
    assert "pw-do-not-show" not in repr(resource) + str(resource)
    assert "'u'" in repr(resource)
