"""Schemathesis hooks for Cartback: signs every request to a signed route
(`/v1/...`) the way a storefront must, so generated events reach ingest
instead of stopping at 401.

Header: X-Cartback-Signature: t=<unix seconds>,v1=<hex>,v2=<hex>
  v1 = HMAC-SHA256(secret, "<t>.<raw body>")                         (shared/core/src/signing.rs)
  v2 = HMAC-SHA256(secret, "<t>.<METHOD>.<path with query>.<raw body>") (issue 9: binds the request;
       sent alongside v1 so the hook keeps working while servers move to v2; a server that does not
       know v2 ignores it)

The body is serialised here, once, and sent as those exact bytes: a signature
over a re-serialisation could differ by a space.
"""

import hashlib
import hmac
import json
import os
import time
from urllib.parse import quote, unquote_to_bytes, urlencode

import requests.utils
import schemathesis
from schemathesis.core import NotSet

SECRET = os.environ["CARTBACK_INGEST_SECRET"].encode()


def _raw_body(case):
    body = getattr(case, "body", None)
    if body is None or isinstance(body, NotSet):
        return None
    if isinstance(body, bytes):
        return body
    return json.dumps(body, ensure_ascii=False).encode()


def _path_with_query(case):
    # The path as the server signs it (README, "Signing (v2)"): each segment
    # decoded, then everything but the unreserved characters encoded.
    sent = requests.utils.requote_uri(case.formatted_path)
    path = "/".join(quote(unquote_to_bytes(segment), safe="") for segment in sent.split("/"))
    if case.query:
        path += "?" + urlencode(case.query, doseq=True)
    return path


def signature(method, path_with_query, body, now=None):
    t = str(int(time.time() if now is None else now))
    v1 = hmac.new(SECRET, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    v2 = hmac.new(SECRET, f"{t}.{method.upper()}.{path_with_query}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={v1},v2={v2}"


@schemathesis.auth().apply_to(path_regex="^/v1/")
class CartbackSignature:
    def get(self, case, ctx):
        return SECRET

    def set(self, case, data, ctx):
        # Replacing the body with bytes makes schemathesis re-label the case; keep its own label.
        MODES[id(case)] = _mode(case)
        raw = _raw_body(case)
        if raw is not None:
            case.body = raw
        case.headers = dict(case.headers or {})
        case.headers["X-Cartback-Signature"] = signature(case.method, _path_with_query(case), raw or b"")


STATS = os.environ.get("CARTBACK_SCHEMATHESIS_STATS")
MODES = {}


def _mode(case):
    return case.meta.generation.mode.value if case.meta is not None else "explicit"


@schemathesis.hook
def after_call(context, case, response):
    """Records `<METHOD> <path template> <status> <positive|negative> <events accepted>
    <rejected fields>` per call, so the
    script can show (and require) that signed events really reached ingest."""
    if not STATS:
        return
    accepted, rejected_fields = "", ""
    if case.path == "/v1/events" and response.status_code == 200:
        try:
            answer = response.json()
            accepted = str(answer.get("accepted", ""))
            fields = {r["error"]["field"] for r in answer.get("results", []) if "error" in r}
            rejected_fields = ",".join(sorted(f or "(event)" for f in fields))
        except (ValueError, KeyError, TypeError):
            accepted = "?"
    with open(STATS, "a", encoding="utf-8") as out:
        mode = MODES.pop(id(case), None) or _mode(case)
        out.write(f"{case.method} {case.path} {response.status_code} {mode} {accepted} {rejected_fields}\n")
