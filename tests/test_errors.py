"""What each HTTP answer means, judged without HTTP."""

from __future__ import annotations

import pytest
from singer_sdk.exceptions import RetriableAPIError

from tap_smartflo.errors import (
    CredentialsRefusedError,
    EndpointError,
    LimitRefusedError,
    RequestRefusedError,
    SmartfloError,
    error_for,
    server_message,
)


def judge(status: int, said: str = ""):
    return error_for(status, path="/v1/users", credential="api_token", said=said)


@pytest.mark.parametrize("status", [200, 204])
def test_success_is_no_error(status):
    assert judge(status) is None


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_an_error_that_names_api_url(status):
    error = judge(status)
    assert isinstance(error, SmartfloError)
    assert f"HTTP {status} on /v1/users" in str(error)
    assert "api_url" in str(error)


def test_401_ends_the_run_naming_the_setting_to_check():
    error = judge(401, ": Token has expired")
    assert type(error) is CredentialsRefusedError
    assert str(error) == (
        "Smartflo refused the credentials (HTTP 401 on /v1/users: Token has expired):"
        " check that api_token is valid and not expired"
    )


@pytest.mark.parametrize("status", [403, 404])
def test_403_and_404_refuse_one_endpoint(status):
    error = judge(status)
    assert isinstance(error, EndpointError)
    assert (error.status, error.path) == (status, "/v1/users")
    assert f"HTTP {status} on /v1/users" in str(error)


def test_403_names_both_causes():
    text = str(judge(403))
    assert "no permission" in text
    assert "api_url or the path is wrong" in text


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_429_and_5xx_are_worth_retrying(status):
    assert type(judge(status)) is RetriableAPIError


@pytest.mark.parametrize("status", [400, 405])
def test_other_4xx_end_the_run(status):
    error = judge(status, ": bad date")
    # Permanent (a SmartfloError), and its status kept for a stream that can skip
    # what it asked for (an unknown user id).
    assert type(error) is RequestRefusedError
    assert isinstance(error, SmartfloError)
    assert (error.status, error.said) == (status, ": bad date")
    assert (
        str(error)
        == f"Smartflo refused the request (HTTP {status} on /v1/users): bad date"
    )


@pytest.mark.parametrize(
    ("status", "said", "numbers"),
    [
        (422, ": The limit may not be greater than 100.", (100,)),
        (422, "", ()),
        (400, ": limit must be between 1 and 250", (1, 250)),
    ],
)
def test_a_422_or_a_400_naming_the_limit_refuses_the_limit(status, said, numbers):
    error = judge(status, said)
    assert type(error) is LimitRefusedError
    assert error.numbers == numbers
    assert (
        str(error) == f"Smartflo refused the request (HTTP {status} on /v1/users){said}"
    )


def test_the_api_message_is_quoted_when_there_is_one():
    assert server_message({"message": "Too many requests."}) == ": Too many requests."
    assert server_message({"success": False}) == ""
    assert server_message([1, 2]) == ""
    assert server_message(None) == ""
    assert server_message({"message": "x" * 500}) == ": " + "x" * 200
