"""Key-encryption keys: what encrypts TLS private keys and the internal CA in the database.

Every ciphertext names its key: `v2:<key id>:<Fernet token>`. Keys come from
- key files `<key_dir>/<key id>.key` (32 random bytes, urlsafe base64; owner-only, in an
  owner-only directory). The greatest key id encrypts (ids made here sort by creation time);
  every loaded key decrypts;
- a passphrase (`secret_key`), stretched with scrypt (n=2^15, r=8, p=1: 32 MiB, about 0.1 s)
  and a random salt that is part of the key id (`pw-<salt hex>`). It encrypts only when no
  key file exists, which keeps controllers that share only the passphrase consistent;
- legacy: ciphertexts without a prefix, from before key ids, were made with SHA-256 of the
  passphrase or of `<state_dir>/secret.key`. They still decrypt; `rotate` re-encrypts them.

`rotate` re-encrypts every stored secret with the encrypting key in one transaction."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shoal.controller.db.models import Certificate, Secret
from shoal.controller.errors import ApiError
from shoal.controller.settings import ControllerSettings
from shoal.errors import ShoalError

__all__ = [
    "Keyring",
    "KeyringError",
    "key_id_of",
    "legacy_key_file",
    "load_keyring",
    "new_key_file",
    "rotate",
    "usage",
    "verify",
]

PREFIX = "v2"
LEGACY = "legacy"  # the key id shown for ciphertexts without one
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_KID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PROCESS_SALT = secrets.token_bytes(16)  # a passphrase encrypts under this salt, per process


class KeyringError(ApiError, ShoalError):
    """A key is missing, wrong or exposed. Not the client's fault: a 500 naming the key id,
    and one line on the command line."""

    status = 500


@dataclass
class Keyring:
    """Key id -> key; `active` encrypts. `passphrase` derives keys for `pw-` ids on demand."""

    keys: dict[str, Fernet]
    active: str
    passphrase: str | None = None
    legacy: list[Fernet] = field(default_factory=list)

    def encrypt(self, data: bytes) -> str:
        return f"{PREFIX}:{self.active}:{self._key(self.active).encrypt(data).decode()}"

    def decrypt(self, token: str) -> bytes:
        kid = key_id_of(token)
        if kid == LEGACY:
            for key in self.legacy:
                try:
                    return key.decrypt(token.encode())
                except InvalidToken:
                    continue
            raise KeyringError(
                "a stored secret predates key ids and no legacy key (secret_key or "
                "<state_dir>/secret.key) on this controller decrypts it"
            )
        try:
            return self._key(kid).decrypt(token.split(":", 2)[2].encode())
        except InvalidToken:
            raise KeyringError(
                f"a stored secret does not decrypt with key {kid}: the key file or "
                "passphrase of that id is not the one it was encrypted with"
            ) from None

    def _key(self, kid: str) -> Fernet:
        if kid in self.keys:
            return self.keys[kid]
        if kid.startswith("pw-") and self.passphrase is not None:
            try:
                salt = bytes.fromhex(kid[3:])
            except ValueError:
                salt = b""
            if len(salt) == 16:
                return _from_passphrase(self.passphrase, salt)
        raise KeyringError(
            f"a stored secret is encrypted with key {kid}, which this controller does not "
            "have: add that key file to its key directory (or its passphrase as secret_key)"
        )


def key_id_of(token: str) -> str:
    parts = token.split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] == PREFIX else LEGACY


@functools.lru_cache(maxsize=32)
def _from_passphrase(passphrase: str, salt: bytes) -> Fernet:
    raw = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(
        passphrase.encode()
    )
    return Fernet(base64.urlsafe_b64encode(raw))


def _legacy(secret: str) -> Fernet:
    digest = hashlib.sha256(b"shoal-keyring-v1\0" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _owner_only(path: Path, what: str, fix: str) -> os.stat_result:
    """Refuses what anyone but the controller's own user can read (or, for a directory,
    enter); a key there may already be exposed."""
    st = path.stat()
    if st.st_mode & 0o077:
        raise KeyringError(
            f"{what} {path} is accessible by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}): {fix} {path}, and replace the key if others "
            "could read it"
        )
    if st.st_uid != os.geteuid():
        raise KeyringError(f"{what} {path} belongs to uid {st.st_uid}, not to this user")
    return st


def _key_files(key_dir: Path) -> list[Path]:
    if not key_dir.exists():
        return []
    _owner_only(key_dir, "key directory", "chmod 700")
    files = sorted(p for p in key_dir.iterdir() if p.suffix == ".key")
    for path in files:
        if not _KID.fullmatch(path.stem):
            raise KeyringError(f"key file {path}: its name must be <key id>.key, id [A-Za-z0-9_-]")
        _owner_only(path, "key file", "chmod 600")
    return files


def _read_key(path: Path) -> Fernet:
    try:
        return Fernet(path.read_bytes().strip())
    except (ValueError, OSError):
        raise KeyringError(
            f"key file {path}: not a key (32 random bytes, urlsafe base64; make one with "
            "`shoal controller rotate-key`)"
        ) from None


def new_key_file(key_dir: Path) -> Path:
    """A fresh random key whose id sorts after every id made before it, in an owner-only
    directory (an exposed one is refused, not quietly fixed)."""
    if key_dir.exists():
        _key_files(key_dir)
    else:
        key_dir.mkdir(parents=True)
        os.chmod(key_dir, 0o700)
    kid = f"k{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
    path = key_dir / f"{kid}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(Fernet.generate_key() + b"\n")
    return path


def legacy_key_file(settings: ControllerSettings) -> Path:
    return settings.state_dir / "secret.key"


def load_keyring(settings: ControllerSettings, *, create: bool = True) -> Keyring:
    """The controller's keys as they are on disk now (a key file added by `rotate-key`
    while the controller runs is used from the next request on). Without any key: one is
    made (the controller's first start), or with create=False, KeyringError."""
    files = _key_files(settings.key_directory)
    if not files and not settings.secret_key:
        if not create:
            raise KeyringError(f"no key in {settings.key_directory} and no secret_key")
        files = [new_key_file(settings.key_directory)]
    legacy_file = legacy_key_file(settings)
    if legacy_file.exists():
        _owner_only(legacy_file, "legacy key file", "chmod 600")  # on every call, as above
        files.append(legacy_file)
    signature = tuple((str(p), p.stat().st_mtime_ns) for p in files)
    return _cached(signature, settings.secret_key, legacy_file)


@functools.lru_cache(maxsize=8)
def _cached(
    signature: tuple[tuple[str, int], ...], passphrase: str | None, legacy_file: Path
) -> Keyring:
    """The keys of these files (path, mtime): read again only when a file changes."""
    keys: dict[str, Fernet] = {}
    legacy = [_legacy(passphrase)] if passphrase else []
    for name, _ in signature:
        path = Path(name)
        if path == legacy_file:
            legacy.append(_legacy(path.read_text().strip()))
        else:
            keys[path.stem] = _read_key(path)
    if keys:
        active = max(keys)
    else:
        assert passphrase is not None
        active = f"pw-{_PROCESS_SALT.hex()}"
    return Keyring(keys, active, passphrase, legacy)


def _stored(session: Session) -> Iterable[tuple[Certificate | Secret, str]]:
    """Every encrypted value in the database, with the attribute that holds it."""
    for cert in session.scalars(select(Certificate).order_by(Certificate.id)):
        yield cert, "private_key"
    for row in session.scalars(select(Secret).order_by(Secret.name)):
        yield row, "value"


def usage(session: Session) -> dict[str, int]:
    """Key id -> how many stored secrets it encrypts."""
    counts: dict[str, int] = {}
    for row, attr in _stored(session):
        kid = key_id_of(getattr(row, attr))
        counts[kid] = counts.get(kid, 0) + 1
    return counts


def verify(session: Session, keyring: Keyring) -> None:
    """Raises KeyringError unless every stored secret decrypts."""
    for row, attr in _stored(session):
        keyring.decrypt(getattr(row, attr))


def rotate(session: Session, keyring: Keyring) -> int:
    """Re-encrypts every stored secret with the active key, in the caller's transaction:
    either every row is rewritten or none (the first one that does not decrypt raises).
    Returns how many were rewritten."""
    if session.get_bind().dialect.name == "postgresql":
        # Other controllers must not add a row under an old key while this runs.
        session.execute(text("LOCK TABLE certificates, secrets IN SHARE ROW EXCLUSIVE MODE"))
    rows = list(_stored(session))
    plain = [keyring.decrypt(getattr(row, attr)) for row, attr in rows]
    for (row, attr), data in zip(rows, plain, strict=True):
        setattr(row, attr, keyring.encrypt(data))
    session.flush()
    return len(rows)
