"""An independent check of Cartback's web push, written against the RFCs
with http_ece (RFC 8188/8291) and cryptography (ECDSA P-256).

  check_webpush.py subscribe          -> {"p256dh", "auth", "private_key"} (a browser's key pair)
  check_webpush.py check REQUEST.json -> {"plaintext", "claims", "public_key"}, or exit 1 with the reason

REQUEST.json: {"private_key", "auth", "origin", "contact", "headers", "body_base64"}.
"""
import base64
import json
import os
import sys
import time

import http_ece
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def subscribe():
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    private = key.private_numbers().private_value.to_bytes(32, "big")
    print(json.dumps({"p256dh": b64url(public), "auth": b64url(os.urandom(16)), "private_key": b64url(private)}))


def fail(reason: str):
    print(reason, file=sys.stderr)
    sys.exit(1)


def check(path: str):
    with open(path) as f:
        request = json.load(f)
    headers = {k.lower(): v for k, v in request["headers"].items()}
    if headers.get("content-encoding") != "aes128gcm":
        fail("Content-Encoding is not aes128gcm")
    # RFC 8291: decrypted with the subscriber's private key and auth secret.
    private = ec.derive_private_key(int.from_bytes(unb64url(request["private_key"]), "big"), ec.SECP256R1())
    plaintext = http_ece.decrypt(
        base64.b64decode(request["body_base64"]),
        private_key=private,
        auth_secret=unb64url(request["auth"]),
        version="aes128gcm",
    )
    # RFC 8292: Authorization: vapid t=<JWT>, k=<public key>
    scheme, _, params = headers["authorization"].partition(" ")
    if scheme.lower() != "vapid":
        fail(f"Authorization scheme is {scheme!r}, not vapid")
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    token, public = fields["t"], unb64url(fields["k"])
    head, claims, signature = token.split(".")
    if json.loads(unb64url(head)).get("alg") != "ES256":
        fail("the JWT is not ES256")
    raw = unb64url(signature)
    if len(raw) != 64:
        fail("the ES256 signature is not r||s (64 bytes)")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public)
    key.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if forged
    claims = json.loads(unb64url(claims))
    now = time.time()
    if claims.get("aud") != request["origin"]:
        fail(f"aud {claims.get('aud')!r} is not the endpoint's origin {request['origin']!r}")
    if not now < claims.get("exp", 0) <= now + 24 * 3600:
        fail(f"exp {claims.get('exp')} is not within 24 hours from now ({now:.0f})")
    if claims.get("sub") != request["contact"]:
        fail(f"sub {claims.get('sub')!r} is not {request['contact']!r}")
    print(json.dumps({"plaintext": plaintext.decode(), "claims": claims, "public_key": fields["k"]}))


if __name__ == "__main__":
    if sys.argv[1] == "subscribe":
        subscribe()
    else:
        check(sys.argv[2])
