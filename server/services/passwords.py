"""Password hashing with argon2id (RFC 9106 parameter profiles of argon2-cffi)."""
from functools import cache

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

from server.errors import InvalidInput


@cache
def _hasher_for(profile: str) -> tuple[PasswordHasher, str]:
    hasher = PasswordHasher.from_parameters(getattr(profiles, profile))
    # Verified against when the user does not exist, so that a wrong user name costs
    # the same time as a wrong password and timing does not reveal which names exist.
    return hasher, hasher.hash("not a password")


def _hasher() -> tuple[PasswordHasher, str]:
    # RFC_9106_LOW_MEMORY in production; the test suite uses CHEAPEST to stay fast.
    return _hasher_for(current_app.config["PASSWORD_PROFILE"])

MIN_LENGTH = 10
MAX_LENGTH = 256


def check_strength(password: str) -> None:
    """Refuse passwords too short to resist guessing, or absurdly long (KDF cost)."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput("user.weak_password", f"A password needs at least {MIN_LENGTH} characters.",
                           errors={"password": [f"At least {MIN_LENGTH} characters."]})
    if len(password) > MAX_LENGTH:
        raise InvalidInput("user.weak_password", f"A password has at most {MAX_LENGTH} characters.",
                           errors={"password": [f"At most {MAX_LENGTH} characters."]})


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher()[0].hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    hasher, dummy = _hasher()
    try:
        return hasher.verify(password_hash or dummy, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
