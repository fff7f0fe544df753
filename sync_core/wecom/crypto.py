"""WeCom callback message crypto (WXBizMsgCrypt), on pycryptodome.

Wire format (reference/wecom-platform.md §1)::

    key        = base64(EncodingAESKey + "=")            # 32 bytes, AES-256
    iv         = key[:16]
    plaintext  = random(16) | len(msg) as uint32 BE | msg | receive_id
    ciphertext = AES-CBC(PKCS#7 padded to a multiple of 32 bytes)
    signature  = sha1("".join(sorted([token, timestamp, nonce, encrypt]))).hexdigest()

Errors mirror the official -400xx codes so logs line up with WeCom's own tooling::

    WeComCryptoError (code)
    ├── SignatureError          -40001  signature mismatch
    ├── ParseError              -40002  envelope could not be parsed
    ├── IllegalAesKey           -40004  EncodingAESKey not 43 chars / not 32 bytes
    ├── ReceiveIdError          -40005  decrypted receive id is not ours
    ├── DecryptError            -40007  AES failure or invalid PKCS#7 padding
    ├── IllegalBuffer           -40008  length field / layout inconsistent
    └── DecodeBase64Error       -40010  ciphertext is not base64
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import struct

from Crypto.Cipher import AES

BLOCK_SIZE = 32  # WeCom pads to 32 bytes, not AES's 16: a 16-byte unpadder rejects valid input.
_RANDOM_ALPHABET = string.ascii_letters + string.digits


class WeComCryptoError(Exception):
    code = -40000
    reason = "crypto error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.reason)
        self.detail = detail or self.reason


class SignatureError(WeComCryptoError):
    code, reason = -40001, "signature mismatch"


class ParseError(WeComCryptoError):
    code, reason = -40002, "malformed envelope"


class IllegalAesKey(WeComCryptoError):
    code, reason = -40004, "illegal EncodingAESKey"


class ReceiveIdError(WeComCryptoError):
    code, reason = -40005, "receive id mismatch"


class DecryptError(WeComCryptoError):
    code, reason = -40007, "decryption failed"


class IllegalBuffer(WeComCryptoError):
    code, reason = -40008, "illegal plaintext layout"


class DecodeBase64Error(WeComCryptoError):
    code, reason = -40010, "ciphertext is not base64"


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """sha1 over the four values sorted as strings: ``signature("t","1","n","x")``."""
    parts = sorted([token, str(timestamp), str(nonce), encrypted])
    return hashlib.sha1("".join(parts).encode("utf-8")).hexdigest()


def aes_key_from(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != 43:
        raise IllegalAesKey("EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise IllegalAesKey("EncodingAESKey is not base64") from exc
    if len(key) != 32:
        raise IllegalAesKey("EncodingAESKey must decode to 32 bytes")
    return key


def pkcs7_pad(data: bytes, block: int = BLOCK_SIZE) -> bytes:
    n = block - len(data) % block
    return data + bytes([n]) * n


def pkcs7_unpad(data: bytes, block: int = BLOCK_SIZE) -> bytes:
    """Strict: pad value in 1..block and every pad byte equal to it."""
    if not data:
        raise DecryptError("empty plaintext")
    n = data[-1]
    if n < 1 or n > block or n > len(data) or data[-n:] != bytes([n]) * n:
        raise DecryptError("invalid PKCS#7 padding")
    return data[:-n]


class WeComCrypto:
    """Signs, encrypts and decrypts for one (token, EncodingAESKey, receive id) triple."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self._token = token
        self._key = aes_key_from(encoding_aes_key)
        self._receive_id = receive_id.encode("utf-8")

    def __repr__(self) -> str:  # never show the token or key
        return f"WeComCrypto(receive_id={self._receive_id.decode('utf-8', 'replace')!r})"

    # -- signatures ----------------------------------------------------------------

    def sign(self, timestamp: str, nonce: str, encrypted: str) -> str:
        return signature(self._token, timestamp, nonce, encrypted)

    def verify_signature(self, msg_signature: str, timestamp: str, nonce: str,
                         encrypted: str) -> None:
        expected = self.sign(timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected.encode(), msg_signature.lower().encode()):
            raise SignatureError()

    # -- AES -----------------------------------------------------------------------

    def encrypt(self, message: bytes, *, random_prefix: bytes | None = None) -> str:
        prefix = random_prefix if random_prefix is not None else _random_prefix()
        if len(prefix) != 16:
            raise ValueError("random prefix must be 16 bytes")
        body = prefix + struct.pack(">I", len(message)) + message + self._receive_id
        cipher = AES.new(self._key, AES.MODE_CBC, iv=self._key[:16])
        return base64.b64encode(cipher.encrypt(pkcs7_pad(body))).decode("ascii")

    def decrypt(self, encrypted: str) -> bytes:
        """Return the message bytes; raise a WeComCryptoError subclass on any defect."""
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecodeBase64Error() from exc
        if not raw or len(raw) % AES.block_size:
            raise DecryptError("ciphertext length is not a multiple of the AES block")
        cipher = AES.new(self._key, AES.MODE_CBC, iv=self._key[:16])
        plain = pkcs7_unpad(cipher.decrypt(raw))
        if len(plain) < 20:
            raise IllegalBuffer("plaintext shorter than its header")
        (length,) = struct.unpack(">I", plain[16:20])
        if length > len(plain) - 20:
            raise IllegalBuffer("length field exceeds plaintext")
        message, receive_id = plain[20:20 + length], plain[20 + length:]
        if not hmac.compare_digest(receive_id, self._receive_id):
            # The received id is not secret and is what an operator needs to fix the config.
            got = receive_id[:64].decode("utf-8", "replace")
            raise ReceiveIdError(f"receive id mismatch (message is for {got!r})")
        return message

    # -- the two callback flows ----------------------------------------------------

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> bytes:
        """GET URL verification: check the signature over echostr, then decrypt it."""
        self.verify_signature(msg_signature, timestamp, nonce, echostr)
        return self.decrypt(echostr)

    def decrypt_message(self, msg_signature: str, timestamp: str, nonce: str,
                        encrypted: str) -> bytes:
        """POST: signature first (cheap, rejects forgeries before any AES work)."""
        self.verify_signature(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)

    def encrypt_message(self, message: bytes, timestamp: str, nonce: str) -> tuple[str, str]:
        """Return ``(encrypt, msg_signature)`` for a message we send (simulator, replies)."""
        encrypted = self.encrypt(message)
        return encrypted, self.sign(timestamp, nonce, encrypted)


def generate_aes_key() -> str:
    """A fresh EncodingAESKey (43 chars). The last character carries two spare bits that
    must be zero for strict base64 decoders, hence its restricted alphabet."""
    body = "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(42))
    return body + secrets.choice("AQgw")


def _random_prefix() -> bytes:
    return "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(16)).encode("ascii")
