"""Optional encryption of backup artifacts: AES-256-GCM in independently authenticated chunks.

The key comes from an environment variable (config ``encryption_key_env``) holding 32 bytes as 64 hex
digits or as base64. The manifest names the key only by its id: the first 8 hex digits of
sha256(key); the key itself is never written anywhere.

Format (all integers big-endian)::

    header   = b"UPKEEPENC1" | key_id (8 ASCII bytes) | nonce_prefix (8 random bytes) | chunk_size (u32)
    chunk*   = length (u32, ciphertext length incl. the 16-byte tag) | ciphertext

Chunk ``i`` (0-based) is sealed with nonce ``nonce_prefix | u32(i)`` and associated data
``header | u64(i) | final`` where ``final`` is 1 for the last chunk and 0 otherwise. Reordering,
dropping, or truncating chunks therefore fails authentication, and a stream that ends without a final
chunk is rejected. Plaintext is at most ``chunk_size`` bytes per chunk (1 MiB by default).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct

from upkeep.errors import ConfigError

MAGIC = b"UPKEEPENC1"
HEADER_LEN = len(MAGIC) + 8 + 8 + 4
TAG_LEN = 16
DEFAULT_CHUNK = 1 << 20


class DecryptionError(Exception):
    """The encrypted stream is corrupt, truncated, or was sealed with another key."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def load_key(env_name: str | None, environ: dict[str, str] | None = None) -> bytes:
    """The 32-byte key from environment variable ``env_name`` (64 hex digits or base64)."""
    env = os.environ if environ is None else environ
    if not env_name:
        raise ConfigError(
            "encrypt: true needs encryption_key_env (the environment variable holding the key)",
            field="config.encryption_key_env",
        )
    raw = env.get(env_name)
    if not raw:
        raise ConfigError(
            f"encryption key variable {env_name} is not set",
            hint=f"export {env_name}=<64 hex digits>, e.g. from `openssl rand -hex 32`",
            field="config.encryption_key_env",
        )
    raw = raw.strip()
    key: bytes | None = None
    if len(raw) == 64:
        try:
            key = bytes.fromhex(raw)
        except ValueError:
            key = None
    if key is None:
        try:
            key = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) != 32:
        raise ConfigError(
            f"encryption key in {env_name} is not 32 bytes (64 hex digits or base64)",
            hint="generate one with `openssl rand -hex 32`",
            field="config.encryption_key_env",
        )
    return key


class Encryptor:
    """Streaming encryptor: ``update(data)`` and ``finalize()`` return ciphertext bytes to write."""

    def __init__(self, key: bytes, chunk_size: int = DEFAULT_CHUNK):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # not at import time (memory)

        self._aead = AESGCM(key)
        self._chunk = chunk_size
        self.header = MAGIC + key_id(key).encode() + os.urandom(8) + struct.pack(">I", chunk_size)
        self._prefix = self.header[len(MAGIC) + 8 : len(MAGIC) + 16]
        self._index = 0
        self._pending = bytearray()
        self._started = False

    def _seal(self, plain: bytes, final: bool) -> bytes:
        nonce = self._prefix + struct.pack(">I", self._index)
        aad = self.header + struct.pack(">QB", self._index, 1 if final else 0)
        self._index += 1
        sealed = self._aead.encrypt(nonce, plain, aad)
        return struct.pack(">I", len(sealed)) + sealed

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self.header

    def update(self, data: bytes) -> bytes:
        out = [self._start()]
        self._pending += data
        # keep at least one byte back so the final chunk is never empty unless the stream is
        while len(self._pending) > self._chunk:
            out.append(self._seal(bytes(self._pending[: self._chunk]), final=False))
            del self._pending[: self._chunk]
        return b"".join(out)

    def finalize(self) -> bytes:
        out = self._start() + self._seal(bytes(self._pending), final=True)
        self._pending.clear()
        return out


class Decryptor:
    """Streaming decryptor, the inverse of ``Encryptor``; raises ``DecryptionError``."""

    def __init__(self, key: bytes):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)
        self._key_id = key_id(key)
        self._buf = bytearray()
        self._header: bytes | None = None
        self._prefix = b""
        self._index = 0
        self._done = False

    def update(self, data: bytes) -> bytes:
        self._buf += data
        out = []
        if self._header is None:
            if len(self._buf) < HEADER_LEN:
                return b""
            header = bytes(self._buf[:HEADER_LEN])
            if not header.startswith(MAGIC):
                raise DecryptionError("not an upkeep encrypted artifact (bad magic)")
            found_id = header[len(MAGIC) : len(MAGIC) + 8].decode("ascii", "replace")
            if found_id != self._key_id:
                raise DecryptionError(f"artifact was encrypted with key id {found_id}, not {self._key_id}")
            self._header = header
            self._prefix = header[len(MAGIC) + 8 : len(MAGIC) + 16]
            del self._buf[:HEADER_LEN]
        while len(self._buf) >= 4:
            (length,) = struct.unpack(">I", self._buf[:4])
            if len(self._buf) < 4 + length:
                break
            sealed = bytes(self._buf[4 : 4 + length])
            del self._buf[: 4 + length]
            out.append(self._open(sealed))
        return b"".join(out)

    def _open(self, sealed: bytes) -> bytes:
        if self._done:
            raise DecryptionError("data after the final chunk")
        from cryptography.exceptions import InvalidTag

        nonce = self._prefix + struct.pack(">I", self._index)
        assert self._header is not None
        for final in (0, 1):
            aad = self._header + struct.pack(">QB", self._index, final)
            try:
                plain = self._aead.decrypt(nonce, sealed, aad)
            except InvalidTag:
                continue
            self._index += 1
            self._done = bool(final)
            return plain
        raise DecryptionError(f"chunk {self._index} failed authentication (corrupt or wrong key)")

    def finalize(self) -> bytes:
        if self._header is None:
            raise DecryptionError("truncated: no header")
        if self._buf or not self._done:
            raise DecryptionError("truncated: the stream ends without its final chunk")
        return b""
