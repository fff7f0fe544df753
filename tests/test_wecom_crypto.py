"""WeCom crypto against the public vectors, round-trips, and tampering."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_core.wecom.crypto import (
    DecodeBase64Error,
    DecryptError,
    IllegalAesKey,
    IllegalBuffer,
    ReceiveIdError,
    SignatureError,
    WeComCrypto,
    WeComCryptoError,
    pkcs7_pad,
    pkcs7_unpad,
    signature,
)

VECTORS_FILE = Path(__file__).resolve().parents[2] / "shared" / "reference" / \
    "wecom_crypto_vectors.json"
# The vectors are also kept in the repo so the suite runs without shared/ beside it.
LOCAL_VECTORS = Path(__file__).parent / "data" / "wecom_crypto_vectors.json"


def _vectors() -> list[dict[str, str]]:
    path = VECTORS_FILE if VECTORS_FILE.exists() else LOCAL_VECTORS
    return json.loads(path.read_text(encoding="utf-8"))["vectors"]  # type: ignore[no-any-return]


VECTORS = _vectors()


def _crypto(v: dict[str, str]) -> WeComCrypto:
    return WeComCrypto(v["token"], v["encoding_aes_key"], v["receive_id"])


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: f"{v['kind']}-{v['timestamp']}")
def test_vector_signature(v: dict[str, str]) -> None:
    assert signature(v["token"], v["timestamp"], v["nonce"], v["encrypted"]) == \
        v["msg_signature"]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: f"{v['kind']}-{v['timestamp']}")
def test_vector_decrypts_to_plaintext(v: dict[str, str]) -> None:
    crypto = _crypto(v)
    if v["kind"] == "echostr":
        out = crypto.verify_url(v["msg_signature"], v["timestamp"], v["nonce"], v["encrypted"])
    else:
        out = crypto.decrypt_message(v["msg_signature"], v["timestamp"], v["nonce"],
                                     v["encrypted"])
    assert out == v["plaintext"].encode("utf-8")


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: f"{v['kind']}-{v['timestamp']}")
def test_vector_padding_is_32_byte_pkcs7(v: dict[str, str]) -> None:
    from Crypto.Cipher import AES

    key = base64.b64decode(v["encoding_aes_key"] + "=")
    raw = AES.new(key, AES.MODE_CBC, iv=key[:16]).decrypt(base64.b64decode(v["encrypted"]))
    assert raw[-1] == int(v["pkcs7_pad_bytes"])
    assert pkcs7_unpad(raw)[-len(v["receive_id"]):] == v["receive_id"].encode()


def test_vector_with_wrong_receive_id_is_refused() -> None:
    v = VECTORS[1]
    crypto = WeComCrypto(v["token"], v["encoding_aes_key"], "ww_someone_else")
    with pytest.raises(ReceiveIdError) as info:
        crypto.decrypt_message(v["msg_signature"], v["timestamp"], v["nonce"], v["encrypted"])
    assert info.value.code == -40005
    assert v["receive_id"] in info.value.detail  # operators need to see what arrived


KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


@settings(max_examples=60, deadline=None)
@given(message=st.one_of(st.binary(max_size=65536),
                         st.text(max_size=4096).map(lambda s: s.encode("utf-8"))),
       receive_id=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x9FFF),
                          max_size=40))
def test_round_trip(message: bytes, receive_id: str) -> None:
    crypto = WeComCrypto("tok", KEY, receive_id)
    encrypted, sig = crypto.encrypt_message(message, "1700000000", "nonce")
    assert len(base64.b64decode(encrypted)) % 32 == 0
    assert crypto.decrypt_message(sig, "1700000000", "nonce", encrypted) == message


def test_round_trip_sizes_at_the_edges() -> None:
    crypto = WeComCrypto("tok", KEY, "corp")
    for size in (0, 1, 11, 12, 31, 32, 33, 64 * 1024):
        message = ("中" * size).encode("utf-8")[:size]
        encrypted = crypto.encrypt(message)
        assert crypto.decrypt(encrypted) == message


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_flipped_ciphertext_byte_is_rejected(data: st.DataObject) -> None:
    crypto = WeComCrypto("tok", KEY, "corp")
    message = b"<xml><ChangeType>create_user</ChangeType><UserID>zhangsan</UserID></xml>"
    raw = bytearray(base64.b64decode(crypto.encrypt(message)))
    index = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    raw[index] ^= 1 << bit
    tampered = base64.b64encode(bytes(raw)).decode()
    # The signature covers the ciphertext, so any flip fails verification first...
    with pytest.raises(SignatureError):
        crypto.decrypt_message(crypto.sign("1", "n", crypto.encrypt(message)), "1", "n",
                               tampered)
    # ...and even a correctly re-signed tampered ciphertext never yields the message.
    try:
        out = crypto.decrypt_message(crypto.sign("1", "n", tampered), "1", "n", tampered)
    except WeComCryptoError:
        return
    assert out != message


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_flipped_signature_character_is_rejected(data: st.DataObject) -> None:
    crypto = WeComCrypto("tok", KEY, "corp")
    encrypted, sig = crypto.encrypt_message(b"hello", "1", "n")
    index = data.draw(st.integers(0, len(sig) - 1))
    # The signature differs on every run (random IV), so the draw must not depend on it:
    # a shift of 1..15 always gives another hex digit.
    shift = data.draw(st.integers(1, 15))
    replacement = "0123456789abcdef"[(int(sig[index], 16) + shift) % 16]
    forged = sig[:index] + replacement + sig[index + 1:]
    with pytest.raises(SignatureError) as info:
        crypto.decrypt_message(forged, "1", "n", encrypted)
    assert info.value.code == -40001


def test_signature_accepts_upper_case_hex() -> None:
    crypto = WeComCrypto("tok", KEY, "corp")
    encrypted, sig = crypto.encrypt_message(b"x", "1", "n")
    assert crypto.decrypt_message(sig.upper(), "1", "n", encrypted) == b"x"


@pytest.mark.parametrize("bad", ["short", "!" * 43, "a" * 44])
def test_illegal_aes_key(bad: str) -> None:
    with pytest.raises(IllegalAesKey) as info:
        WeComCrypto("tok", bad, "corp")
    assert info.value.code == -40004


def test_not_base64() -> None:
    crypto = WeComCrypto("tok", KEY, "corp")
    with pytest.raises(DecodeBase64Error):
        crypto.decrypt("not base64 at all!!")


def test_ciphertext_not_block_aligned() -> None:
    crypto = WeComCrypto("tok", KEY, "corp")
    with pytest.raises(DecryptError):
        crypto.decrypt(base64.b64encode(b"x" * 20).decode())


@pytest.mark.parametrize("tail", [b"\x00", b"\x21", b"\x03\x02\x03"])
def test_bad_padding_is_refused(tail: bytes) -> None:
    with pytest.raises(DecryptError):
        pkcs7_unpad(b"A" * 29 + tail)


def test_pad_to_32_bytes() -> None:
    for n in range(0, 70):
        padded = pkcs7_pad(b"x" * n)
        assert len(padded) % 32 == 0 and 1 <= padded[-1] <= 32
        assert pkcs7_unpad(padded) == b"x" * n


def test_length_field_beyond_plaintext_is_illegal_buffer() -> None:
    from Crypto.Cipher import AES

    key = base64.b64decode(KEY + "=")
    body = b"R" * 16 + (9999).to_bytes(4, "big") + b"hi" + b"corp"
    encrypted = base64.b64encode(
        AES.new(key, AES.MODE_CBC, iv=key[:16]).encrypt(pkcs7_pad(body))).decode()
    with pytest.raises(IllegalBuffer):
        WeComCrypto("tok", KEY, "corp").decrypt(encrypted)


def test_repr_hides_token_and_key() -> None:
    crypto = WeComCrypto("super-secret-token", KEY, "corp")
    assert "super-secret-token" not in repr(crypto) and KEY not in repr(crypto)
