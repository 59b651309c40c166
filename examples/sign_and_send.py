#!/usr/bin/env python3
"""How a storefront backend sends events to Cartback: sign, post, read results.

Standard library only. Usage:
    CARTBACK_URL=https://abc.execute-api.eu-west-1.amazonaws.com \
    CARTBACK_INGEST_SECRET=... python3 examples/sign_and_send.py
"""
import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request


def canonical_path(path_and_query: str) -> str:
    """The path as v2 signs it: each segment percent-decoded, then every byte
    but A-Z a-z 0-9 - . _ ~ encoded (upper-case %XX); the query as sent."""
    path, sep, query = path_and_query.partition("?")
    segments = [urllib.parse.quote(urllib.parse.unquote_to_bytes(s), safe="") for s in path.split("/")]
    return "/".join(segments) + sep + query


def signature(secret: str, method: str, path_and_query: str, body: bytes, timestamp: int) -> str:
    """X-Cartback-Signature: t=<unix seconds>,v2=<hex HMAC-SHA256(secret, "<t>.<METHOD>.<path with query>.<body>")>.

    The MAC binds the signature to this method, path and body, so a captured
    header is good for nothing else; the timestamp is your real clock's.
    """
    message = b".".join([str(timestamp).encode(), method.encode(), canonical_path(path_and_query).encode(), body])
    mac = hmac.new(secret.encode(), message, hashlib.sha256)
    return f"t={timestamp},v2={mac.hexdigest()}"


def post_events(base_url: str, secret: str, events: list) -> dict:
    # Sign exactly the bytes you send: serialise once.
    body = json.dumps({"events": events}, separators=(",", ":")).encode()
    path = "/v1/events"
    request = urllib.request.Request(
        base_url.rstrip("/") + path,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Cartback-Signature": signature(secret, "POST", path, body, int(time.time())),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        # 400/401/413 carry {"error": {"code", "message"}}; 503 means retry later.
        raise RuntimeError(f"HTTP {error.code}: {error.read().decode()}") from None


if __name__ == "__main__":
    answer = post_events(
        os.environ.get("CARTBACK_URL", "http://127.0.0.1:8080"),
        os.environ["CARTBACK_INGEST_SECRET"],
        [
            {
                "event_id": "py-example-1",
                "type": "add_to_cart",
                "cart_id": "py-cart-1",
                "currency": "EUR",
                "device": "desktop",
                "customer": {"email": "ana@example.com", "consents": {"email": True}},
                "items": [{"item_id": "sku-1", "item_name": "Mug", "price": "12.50", "quantity": 1}],
            }
        ],
    )
    for result in answer["results"]:
        print(result["index"], result["status"], result.get("error", ""))
