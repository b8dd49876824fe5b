"""core/certs.py: a certificate's notAfter read with a small bounded DER reader, from PEM
fixtures made with the openssl CLI (tests/fixtures/certs: UTCTime and GeneralizedTime)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from swarm_medic.core.certs import MAX_PEM, CertError, der_not_after, pem_not_after
from swarm_medic.runbook.helpers import cert_not_after

CERTS = Path(__file__).parent.parent / "fixtures" / "certs"
NODE = (CERTS / "node-utc.pem").read_text()  # notAfter Mar  7 17:44:02 2027 GMT (UTCTime)
CA = (CERTS / "ca-generalized.pem").read_text()  # Nov 13 17:44:02 2126 GMT (GeneralizedTime)


def _der(pem: str) -> bytes:
    body = pem.split("-----")[2]
    return base64.b64decode("".join(body.split()))


def test_utctime_and_generalizedtime_are_read_as_openssl_says() -> None:
    assert pem_not_after(NODE) == 1_804_441_442.0
    assert pem_not_after(CA.encode()) == 4_950_265_442.0
    assert der_not_after(_der(NODE)) == 1_804_441_442.0


def test_a_bundle_expires_with_its_first_certificate_to_expire() -> None:
    assert pem_not_after(CA + NODE) == pem_not_after(NODE)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a certificate",
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",  # SEQUENCE, empty
        "x" * (MAX_PEM + 1),
    ],
    ids=["empty", "text", "bad-base64", "empty-sequence", "oversize"],
)
def test_anything_else_is_a_cert_error_and_the_helper_says_none(text: str) -> None:
    with pytest.raises(CertError):
        pem_not_after(text)
    assert cert_not_after(text) is None


def test_every_truncation_of_a_certificate_is_a_cert_error_never_another() -> None:
    der = _der(NODE)
    for end in range(len(der)):
        try:
            der_not_after(der[:end])
        except CertError:
            continue
        pytest.fail(f"a certificate cut at {end} bytes was read")  # pragma: no cover


def test_a_length_field_longer_than_four_bytes_is_refused() -> None:
    with pytest.raises(CertError, match="bad length"):
        der_not_after(b"\x30\x85" + b"\xff" * 5)
