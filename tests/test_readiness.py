"""Readiness reflects whether the service can do its job: the database, and the last word
of each remote on our credentials, without calling a remote on each probe."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from receiver.app import create_app
from simulators.authing.app import AuthingSimulator
from simulators.server import BackgroundServer, free_port
from simulators.wecom.app import WeComSimulator
from sync_core.authing.client import AuthingClient
from sync_core.errors import AuthError, RestrictedError
from sync_core.settings import Settings
from sync_core.wecom.client import WeComClient

from .conftest import CallbackKeys, make_settings
from .e2e_stack import eventually
from .remote_fakes import FakeTime, Recorder, sequence
from .test_authing_client import KEY_ID, SECRET, fail, jwt, ok

WRONG = "wrong-authing-secret-0123456789"


@contextmanager
def simulated(db_url: str, keys: CallbackKeys, authing_secret: str) -> Iterator[Settings]:
    """Both simulators, and settings pointing at them with ``authing_secret``."""
    wecom = WeComSimulator(corp_id=keys.corp_id)
    authing = AuthingSimulator(userpool_id="pool-ready", secret="the-right-secret")
    with wecom, authing:
        yield make_settings(
            db_url, keys, wecom_contact_secret="contact-sync-secret",
            wecom_api_base=wecom.url, authing_api_base=authing.url,
            authing_access_key_id="pool-ready", authing_access_key_secret=authing_secret,
            worker_poll_seconds=0.1)


def test_readyz_is_unavailable_while_authing_refuses_the_secret(sqlite_url: str,
                                                                keys: CallbackKeys) -> None:
    with simulated(sqlite_url, keys, WRONG) as settings, \
            BackgroundServer(create_app(settings, with_worker=True)) as srv:
        ready = eventually(lambda: (r := httpx.get(f"{srv.url}/readyz")).status_code == 503
                           and r)
    body = ready.json()
    assert body["status"] == "unavailable" and body["database"] == "ok"
    assert body["authing"] == "credentials refused" and "authing" in body["authing_error"]
    assert body["wecom"] == "unchecked"
    assert WRONG not in ready.text and "the-right-secret" not in ready.text


def test_readyz_is_ready_when_both_remotes_accept_us(sqlite_url: str,
                                                     keys: CallbackKeys) -> None:
    with simulated(sqlite_url, keys, "the-right-secret") as settings:
        app = create_app(settings, with_worker=True)
        with BackgroundServer(app) as srv:
            eventually(lambda: app.state.runtime.worker.ready, 20)
            ready = httpx.get(f"{srv.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "wecom": "unchecked",
                            "authing": "ok"}


def test_readyz_calls_no_remote(sqlite_url: str, keys: CallbackKeys) -> None:
    # Both remotes point at a port nobody listens on: a probe that called one would fail.
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(sqlite_url, keys, wecom_contact_secret="s",
                             wecom_api_base=nowhere, authing_api_base=nowhere,
                             authing_access_key_id="k", authing_access_key_secret="s")
    with BackgroundServer(create_app(settings)) as srv:
        answers = [httpx.get(f"{srv.url}/readyz") for _ in range(5)]
    assert all(a.status_code == 200 and a.json()["authing"] == "unchecked" for a in answers)


async def test_the_credential_state_follows_the_last_answer() -> None:
    time = FakeTime()
    token = ok({"access_token": jwt({"scoped_userpool_id": "p"}), "expires_in": 7200})
    recorder = Recorder({
        "get-management-token": sequence(fail(401, "accessKeySecret 错误"), token),
        "get-user": lambda r: ok({"userId": "id1"})})
    client = AuthingClient(recorder.client(), KEY_ID, SECRET, base_url="https://authing.test",
                           organization_code="wecom", clock=time.clock, sleep=time.sleep)
    assert (client.credentials.checked, client.credentials.refused) == (False, None)
    with pytest.raises(AuthError):
        await client.get_user(user_id="id1")
    assert client.credentials.refused and SECRET not in client.credentials.refused
    with pytest.raises(AuthError):  # remembered for a minute: no second token call
        await client.get_user(user_id="id1")
    assert client.credentials.refused
    time.now += 61  # the secret was fixed on Authing's side meanwhile
    await client.get_user(user_id="id1")
    assert (client.credentials.checked, client.credentials.refused) == (True, None)


@pytest.mark.parametrize("errcode, refused", [(40001, True), (40013, True), (48002, False),
                                              (60020, False), (60111, False)])
async def test_wecom_codes_that_mean_wrong_credentials(errcode: int, refused: bool) -> None:
    time = FakeTime()
    recorder = Recorder({
        "gettoken": sequence({"errcode": 40001, "errmsg": "invalid secret"} if errcode in
                             (40001, 40013) else {"errcode": 0, "access_token": "t",
                                                  "expires_in": 7200}),
        "user/get": lambda r: {"errcode": errcode, "errmsg": "refused"}})
    client = WeComClient(recorder.client(), "ww1", "contact-secret",
                         base_url="https://wecom.test", clock=time.clock,
                         sleep=time.sleep, retry_attempts=1)
    with pytest.raises(AuthError if refused else Exception) as caught:
        await client.user_get("zhangsan")
    assert (client.credentials.refused is not None) is refused
    if isinstance(caught.value, RestrictedError):
        assert not client.credentials.checked


def test_a_wrong_token_or_key_is_logged_once_a_minute_without_secrets(
        sqlite_url: str, keys: CallbackKeys, caplog: pytest.LogCaptureFixture) -> None:
    from sync_core.wecom.crypto import WeComCrypto, generate_aes_key

    from .helpers import change_contact, running_receiver, signed_post

    wrong_token = WeComCrypto("not-the-token", keys.aes_key, keys.corp_id)
    wrong_key = WeComCrypto(keys.token, generate_aes_key(), keys.corp_id)
    caplog.set_level("INFO")
    settings = make_settings(sqlite_url, keys, authing_webhook_secret="s3cr3t-hook-value")
    with running_receiver(settings) as srv:
        for crypto, expected in ((wrong_token, 403), (wrong_key, 400)):
            for i in range(8):
                params, body = signed_post(crypto, change_contact(
                    keys.corp_id, f"<ChangeType>delete_user</ChangeType><UserID>u{i}</UserID>"),
                    keys.corp_id)
                response = httpx.post(f"{srv.url}/wecom/callback", params=params,
                                      content=body)
                assert response.status_code == expected
        for _ in range(8):
            assert httpx.post(f"{srv.url}/authing/webhook", json={"eventName": "x"},
                              headers={"x-authing-webhook-secret": "guess-x9"}).status_code == 401
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    signature = [m for m in lines if "signature mismatch" in m]
    decrypt = [m for m in lines if "WECOM_SYNC_WECOM_ENCODING_AES_KEY" in m]
    webhook = [m for m in lines if "WECOM_SYNC_AUTHING_WEBHOOK_SECRET" in m]
    assert len(signature) == 1 and "WECOM_SYNC_WECOM_CALLBACK_TOKEN" in signature[0], lines
    assert len(decrypt) == 1 and len(webhook) == 1, lines
    for secret in (keys.token, keys.aes_key, "not-the-token", "s3cr3t-hook-value", "guess-x9"):
        assert secret not in caplog.text
