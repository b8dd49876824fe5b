"""A certificate's expiry (notAfter), read from PEM or DER with a small bounded ASN.1 reader.

Why a reader of our own: the `cryptography` package is not a runtime dependency (see
requirements/runtime.txt), and the standard library's only X.509 decoder,
`ssl._ssl._test_decode_cert`, is private, undocumented and reads from a file path. An X.509
certificate's expiry sits at a fixed place: Certificate ::= SEQUENCE { tbsCertificate SEQUENCE
{ [0] version OPTIONAL, serialNumber, signature, issuer, validity SEQUENCE { notBefore,
notAfter }, ... } ... }, so the reader walks six DER headers, each length checked against what
is left, and parses one UTCTime or GeneralizedTime. Anything else raises `CertError`.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import re
from typing import Final

MAX_PEM: Final = 64 * 1024  # a swarm certificate is ~1 KiB; a bundle of a few is fine
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.*?)\s*-----END CERTIFICATE-----", re.S)
_SEQUENCE, _UTC, _GENERALIZED, _VERSION = 0x30, 0x17, 0x18, 0xA0


class CertError(ValueError):
    """Not a certificate this reader reads; the text is safe to log."""


def _header(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of the content, end of the content) of the DER element at `at`."""
    if at + 2 > len(der):
        raise CertError("truncated")
    tag, first = der[at], der[at + 1]
    at += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or at + n > len(der):
            raise CertError("bad length")
        length = int.from_bytes(der[at : at + n], "big")
        at += n
    if at + length > len(der):
        raise CertError("truncated")
    return tag, at, at + length


def _time(tag: int, text: bytes) -> float:
    try:
        s = text.decode("ascii")
    except UnicodeDecodeError:
        raise CertError("time is not ASCII") from None
    if tag == _UTC and re.fullmatch(r"[0-9]{12}Z", s):
        year = int(s[:2])
        year += 1900 if year >= 50 else 2000  # RFC 5280 4.1.2.5.1
        rest = s[2:]
    elif tag == _GENERALIZED and re.fullmatch(r"[0-9]{14}Z", s):
        year, rest = int(s[:4]), s[4:]
    else:
        raise CertError(f"time {s[:20]!r} is not UTCTime or GeneralizedTime in UTC")
    mon, day, hh, mm, ss = (int(rest[i : i + 2]) for i in range(0, 10, 2))
    if not (1 <= mon <= 12 and 1 <= day <= 31 and hh < 24 and mm < 60 and ss < 61):
        raise CertError(f"time {s!r} out of range")
    return float(calendar.timegm((year, mon, day, hh, mm, ss, 0, 0, 0)))


def der_not_after(der: bytes) -> float:
    """The notAfter of a DER certificate, in epoch seconds (CertError if it is not one)."""
    tag, start, _ = _header(der, 0)
    if tag != _SEQUENCE:
        raise CertError("not a certificate")
    tag, at, _ = _header(der, start)  # tbsCertificate
    if tag != _SEQUENCE:
        raise CertError("no tbsCertificate")
    tag, _, end = _header(der, at)
    if tag == _VERSION:
        at = end
    for _ in range(4):  # serialNumber, signature, issuer, then validity's header
        tag, content, end = _header(der, at)
        at = end
    if tag != _SEQUENCE:
        raise CertError("no validity")
    _, _, end = _header(der, content)  # notBefore
    tag, content, end = _header(der, end)  # notAfter
    return _time(tag, der[content:end])


def pem_not_after(pem: bytes | str) -> float:
    """The earliest notAfter of the certificates in a PEM text (a chain or a CA bundle expires
    with its first certificate); CertError when there is none."""
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    if len(data) > MAX_PEM:
        raise CertError(f"{len(data)} bytes, over {MAX_PEM}")
    found: list[float] = []
    for block in _PEM.findall(data):
        try:
            der = base64.b64decode(b"".join(block.split()), validate=True)
        except (binascii.Error, ValueError):
            raise CertError("bad base64") from None
        found.append(der_not_after(der))
    if not found:
        raise CertError("no certificate in the PEM text")
    return min(found)
