"""The error tree, the remote code tables and redaction (pure)."""

from __future__ import annotations

import logging

import pytest

from sync_core.errors import (
    AuthError,
    BadRequestError,
    ConflictError,
    DryRunRejected,
    NotFoundError,
    PermanentError,
    RestrictedError,
    StopSync,
    SyncError,
    TransientError,
    from_authing,
    from_wecom,
    install_log_redaction,
    redact,
)


@pytest.mark.parametrize(("cls", "branch"), [
    (TransientError, SyncError), (NotFoundError, PermanentError),
    (ConflictError, PermanentError), (BadRequestError, PermanentError),
    (AuthError, StopSync), (RestrictedError, AuthError), (DryRunRejected, StopSync)])
def test_tree_branches(cls: type[SyncError], branch: type[SyncError]) -> None:
    assert issubclass(cls, branch)


@pytest.mark.parametrize("cls", [TransientError, PermanentError, NotFoundError, ConflictError,
                                 BadRequestError])
def test_only_stop_errors_abort_a_run(cls: type[SyncError]) -> None:
    assert not issubclass(cls, StopSync)


def test_each_class_has_its_own_kind_for_metrics() -> None:
    classes: list[type[SyncError]] = [
        TransientError, PermanentError, NotFoundError, ConflictError, BadRequestError,
        StopSync, AuthError, RestrictedError, DryRunRejected]
    assert len({cls.kind for cls in classes}) == len(classes)


def test_error_carries_context_and_says_where() -> None:
    exc = from_authing(400, "参数 email 格式错误", api_code=2001, request_id="r-1",
                       endpoint="create-user")
    assert (exc.code, exc.status, exc.request_id, exc.message) == (2001, 400, "r-1",
                                                                   "参数 email 格式错误")
    assert str(exc) == "authing create-user: 参数 email 格式错误 (code 2001, request r-1)"
    assert "BadRequestError" in repr(exc)


@pytest.mark.parametrize(("code", "retry_after", "maybe_applied"), [
    (-1, None, True), (45009, 60.0, False), (45033, 1.0, False)])
def test_wecom_transient_codes_carry_their_wait(code: int, retry_after: float | None,
                                                maybe_applied: bool) -> None:
    exc = from_wecom(code, "busy")
    assert type(exc) is TransientError and isinstance(exc, TransientError)
    assert (exc.retry_after, exc.maybe_applied) == (retry_after, maybe_applied)


@pytest.mark.parametrize(("code", "cls"), [
    (60111, NotFoundError), (60003, NotFoundError),
    (60102, ConflictError), (60104, ConflictError), (60106, ConflictError),
    (60008, ConflictError),
    (40001, AuthError), (40013, AuthError), (41001, AuthError), (40014, AuthError),
    (42001, AuthError),
    (48002, RestrictedError), (48009, RestrictedError), (60020, RestrictedError),
    (60011, PermanentError), (45029, BadRequestError), (60004, BadRequestError),
    (60005, BadRequestError), (60006, BadRequestError), (60007, BadRequestError),
    (60103, BadRequestError), (60105, BadRequestError), (60110, BadRequestError),
    (60123, NotFoundError), (60124, BadRequestError), (60129, BadRequestError),
    (60132, BadRequestError), (12345, BadRequestError)])
def test_wecom_errcode_table(code: int, cls: type[SyncError]) -> None:
    exc = from_wecom(code, "message", endpoint="user/get")
    assert type(exc) is cls
    assert (exc.code, exc.remote, exc.endpoint) == (code, "wecom", "user/get")


@pytest.mark.parametrize(("status", "api_code", "message", "cls"), [
    (500, None, "internal", TransientError), (502, None, "bad gateway", TransientError),
    (429, None, "slow down", TransientError), (1000, None, "系统繁忙", TransientError),
    (400, 1000, "系统繁忙", TransientError),
    (401, None, "token expired", AuthError), (403, None, "无权限", AuthError),
    (404, None, "用户不存在", NotFoundError), (400, 2004, "用户不存在", NotFoundError),
    (409, None, "conflict", ConflictError), (400, 2026, "用户已存在", ConflictError),
    (400, None, "手机号已被绑定", ConflictError),
    (400, None, "email already exists", ConflictError),
    (400, None, "limit must less than 50", BadRequestError),
    (400, None, "参数 userIds 格式错误", BadRequestError), (422, None, "odd", BadRequestError)])
def test_authing_status_table(status: int, api_code: int | None, message: str,
                              cls: type[SyncError]) -> None:
    exc = from_authing(status, message, api_code=api_code, retry_after=3.0)
    assert type(exc) is cls
    assert exc.status == status
    if isinstance(exc, TransientError):
        assert exc.retry_after == 3.0
        assert exc.maybe_applied is (status != 429)


@pytest.mark.parametrize(("text", "expected"), [
    ("GET /cgi-bin/gettoken?corpid=ww1&corpsecret=s3cr3t-value",
     "GET /cgi-bin/gettoken?corpid=ww1&corpsecret=***"),
    ("https://q/cgi-bin/user/get?access_token=abc.def&userid=zs",
     "https://q/cgi-bin/user/get?access_token=***&userid=zs"),
    ('{"accessKeyId": "pool", "accessKeySecret": "s3cr3t"}',
     '{"accessKeyId": "pool", "accessKeySecret": "***"}'),
    ("authorization: Bearer abc.def-ghi", "authorization: Bearer ***"),
    ("token eyJhbGciOi.eyJzdWIiOiIx.sig leaked", "token *** leaked"),
    ("nothing secret here", "nothing secret here")])
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_masks_literal_secrets_wherever_they_stand() -> None:
    assert redact("echo: my-corp-secret!", "my-corp-secret") == "echo: ***!"


def test_messages_are_redacted_when_the_error_is_built() -> None:
    exc = BadRequestError("bad: https://x/y?access_token=tok123&corpsecret=sss")
    assert "tok123" not in str(exc) and "sss" not in repr(exc)


def test_log_redaction_filter_rewrites_request_lines(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction("tests.redaction")
    install_log_redaction("tests.redaction")  # idempotent
    logger = logging.getLogger("tests.redaction")
    assert len(logger.filters) == 1
    with caplog.at_level(logging.INFO, logger="tests.redaction"):
        logger.info("HTTP Request: %s %s", "GET", "https://q/x?access_token=tok999&id=1")
    assert "tok999" not in caplog.text
    assert "access_token=***&id=1" in caplog.text
