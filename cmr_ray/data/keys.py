"""Salted keys and patient-level splits: the only identifiers that leave `prepare`.

    salt = load_salt(fs, root)              # env CMR_RAY_SALT, else STORE/.salt (made once)
    study_key(salt, study_uid); patient_key(salt, patient_id)
    assign_split(patient_key, val_fraction=0.1, test_fraction=0.25) -> 'train'|'val'|'test'

No salt ships with the code: without CMR_RAY_SALT a random one is created in the store on
first use and reused from there.  `store.json` records only a fingerprint of the salt, so
a run with a different salt is refused instead of silently mixing two key spaces.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from cmr_ray.data import storefs

SALT_ENV = "CMR_RAY_SALT"
SALT_FILE = ".salt"


def load_salt(fs=None, root: str | None = None, create: bool = True) -> str:
    env = os.environ.get(SALT_ENV, "").strip()
    if env:
        return env
    if fs is None:
        if not create:
            raise ValueError(f"no salt: set {SALT_ENV} or give a store")
        return secrets.token_hex(32)  # ephemeral: keys are only comparable within this run
    path = storefs.join(root, SALT_FILE)
    if storefs.exists(fs, path):
        salt = storefs.read_bytes(fs, path).decode().strip()
        if salt:
            return salt
    if not create:
        raise ValueError(f"{path}: no salt in the store and {SALT_ENV} is not set")
    salt = secrets.token_hex(32)
    fs.create_dir(root, recursive=True)
    storefs.write_bytes_atomic(fs, path, salt.encode())
    return salt


def salt_fingerprint(salt: str) -> str:
    return hashlib.sha256(b"cmr-ray salt fingerprint:" + salt.encode()).hexdigest()[:12]


def _key(salt: str, kind: str, value: str) -> str:
    return hmac.new(salt.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:20]


def study_key(salt: str, study_uid: str) -> str:
    return "s" + _key(salt, "study", study_uid)


def patient_key(salt: str, patient_id: str) -> str:
    return "p" + _key(salt, "patient", patient_id)


def series_key(salt: str, series_uid: str) -> str:
    return "r" + _key(salt, "series", series_uid)


def accession_key(salt: str, accession: str) -> str:
    """Lets a re-run notice a changed report without the store holding the accession number."""
    return "a" + _key(salt, "accession", accession)


def assign_split(pkey: str, val_fraction: float, test_fraction: float) -> str:
    """Deterministic per patient: a uniform number from the (already salted) patient key."""
    u = int(hashlib.sha256(f"split:{pkey}".encode()).hexdigest()[:15], 16) / 16**15
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def fingerprint(items) -> str:
    """Content fingerprint of an iterable of strings (e.g. 'relpath:size:mtime' per file)."""
    h = hashlib.sha256()
    for s in sorted(items):
        h.update(s.encode("utf-8", "surrogateescape"))
        h.update(b"\n")
    return h.hexdigest()[:20]
