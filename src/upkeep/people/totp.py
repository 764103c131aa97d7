"""TOTP second factor (RFC 6238, as authenticator apps do it): secrets, codes, enrolment QR codes.

A code is accepted within one 30-second step of the server's clock either way, and only once: the
step it matched is stored, and a code of that step or an earlier one is refused (a code seen over
a shoulder or replayed from a log cannot sign in again). The enrolment QR code is an inline SVG
made here (segno), so enrolling needs no network and no third party ever sees the secret.
"""

from __future__ import annotations

from datetime import datetime

import pyotp
from pyotp.exceptions import OTPVerificationError

ISSUER = "upkeep"
DRIFT_STEPS = 1  # codes of the previous and next 30-second step are accepted too


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, name: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The QR code of ``uri`` as an inline ``<svg>`` element."""
    import segno

    return segno.make(uri, error="m").svg_inline(scale=5, title="TOTP enrolment QR code")


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code ``code`` is (within the allowed drift), or None."""
    code = "".join(code.split())
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        return None
    try:
        return pyotp.TOTP(secret).verify_and_get_timecode(code, for_time=now, valid_window=DRIFT_STEPS)
    except OTPVerificationError:
        return None


def code_at(secret: str, when: datetime) -> str:
    """The code an authenticator app shows at ``when`` (for tests and the CLI's own checks)."""
    return pyotp.TOTP(secret).at(when)
