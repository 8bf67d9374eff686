"""The Ed25519 keys that sign checkpoints (docs/tamper-evidence.md#keys).

Under ``AUDITSTREAM_HOME/keys``: ``<key id>.key`` (PKCS#8 PEM, mode 0600), ``<key id>.pub``
(SubjectPublicKeyInfo PEM) and ``current`` (the id of the key that signs now). The key id is
the first 16 hex digits of the sha256 of the raw public key, so anyone holding the public key
can compute it. A key is generated on first use; ``rotate`` makes a new one current; once the
rotation is recorded (a checkpoint signed by the old key, ``checkpoints.Recorder.rotate``) the
old private key is removed and only its public key kept: its checkpoints stay verifiable, and
one it signs after its retirement is rejected (``checkpoints.retirements``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class KeyFileError(RuntimeError):
    """A key file is missing, unreadable or not an Ed25519 key."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private: Ed25519PrivateKey

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private.sign(message)).decode()

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()


def verify_signature(public: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    try:
        public.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


_PEM_BLOCK = re.compile(r"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", re.S)


def load_public_keys(text: str) -> dict[str, Ed25519PublicKey]:
    """Every PEM public key in ``text`` (``auditstream keys export`` writes several), by id."""
    out: dict[str, Ed25519PublicKey] = {}
    for block in _PEM_BLOCK.findall(text):
        key = serialization.load_pem_public_key(block.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError("not an Ed25519 public key")
        out[key_id(key)] = key
    if not out:
        raise KeyFileError("no PEM public key (-----BEGIN PUBLIC KEY-----) found")
    return out


class KeyStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def at_home(cls, home: Path) -> KeyStore:
        return cls(home / "keys")

    def _write_private(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())

    def _generate(self) -> SigningKey:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = Ed25519PrivateKey.generate()
        kid = key_id(private.public_key())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._write_private(self.directory / f"{kid}.key", pem)
        (self.directory / f"{kid}.pub").write_text(public_pem(private.public_key()))
        return SigningKey(kid, private)

    def _set_current(self, kid: str) -> None:
        tmp = self.directory / "current.tmp"
        tmp.write_text(kid + "\n")
        os.replace(tmp, self.directory / "current")

    def current_id(self) -> str | None:
        try:
            return (self.directory / "current").read_text().strip() or None
        except FileNotFoundError:
            return None

    def load(self, kid: str) -> SigningKey:
        path = self.directory / f"{kid}.key"
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"cannot read the signing key {path}: {exc}") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyFileError(f"{path} is not an Ed25519 private key")
        return SigningKey(kid, private)

    def current(self, create: bool = True) -> SigningKey:
        """The signing key (generated on first use when ``create``)."""
        kid = self.current_id()
        if kid is None:
            if not create:
                raise KeyFileError(f"no signing key in {self.directory} (start the sink once)")
            key = self._generate()
            self._set_current(key.key_id)
            return key
        return self.load(kid)

    def rotate(self) -> tuple[SigningKey, SigningKey]:
        """(old, new): a new key becomes current; the old one is kept."""
        old = self.current()
        new = self._generate()
        self._set_current(new.key_id)
        return old, new

    def remove_private(self, kid: str) -> None:
        """Delete a retired key's private half (overwritten first; on copy-on-write or
        journalling file systems, and in backups, copies may remain: treat it as exposed)."""
        path = self.directory / f"{kid}.key"
        if kid == self.current_id():
            raise KeyFileError(f"{kid} is the current signing key")
        try:
            size = path.stat().st_size
            with path.open("r+b") as out:
                out.write(b"\0" * size)
                out.flush()
                os.fsync(out.fileno())
            path.unlink()
        except FileNotFoundError:
            return

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """Every key's public half, current and retired, by id."""
        out: dict[str, Ed25519PublicKey] = {}
        for path in sorted(self.directory.glob("*.pub")):
            out.update(load_public_keys(path.read_text()))
        return out

    def export(self) -> str:
        """The public keys as PEM blocks, each after a comment line naming its id (a key is
        generated first if there is none)."""
        current = self.current().key_id
        parts = []
        for kid, key in self.public_keys().items():
            note = " (current)" if kid == current else ""
            parts.append(f"# auditstream checkpoint key {kid}{note}\n{public_pem(key)}")
        return "".join(parts)
