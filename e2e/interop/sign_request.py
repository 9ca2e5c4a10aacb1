"""Sends one request signed by an independent RFC 9421 implementation.

The interoperability test (e2e/tests/identity_interop.rs) runs this with the
python of scripts/install-interop.sh to check that the api-server accepts
signatures made by the PyPI package http-message-signatures, not only by our
own signer. The library computes Content-Digest (RFC 9530) from the body and
writes Signature-Input and Signature; this script only builds the request and
sends it with the standard library.

    sign_request.py URL KEY_ID SEED_B64 CONTENT_TYPE BODY_FILE [--tamper-body]

SEED_B64 is the base64 of the 32-byte Ed25519 private seed. With
--tamper-body the body sent differs from the one digested and signed.
Prints the HTTP status on the first line and the response body after it
(the image is summarised by its length).
"""

import argparse
import base64
import datetime
import sys
import urllib.error
import urllib.request

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

COVERED = ("@method", "@authority", "@path", "@query", "content-type", "content-digest")


class Request:
    """The message interface the library signs: method, absolute URL, headers."""

    def __init__(self, method, url, headers):
        self.method, self.url, self.headers = method, url, headers


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("key_id")
    p.add_argument("seed_b64")
    p.add_argument("content_type")
    p.add_argument("body_file")
    p.add_argument("--tamper-body", action="store_true")
    a = p.parse_args()

    body = open(a.body_file, "rb").read()
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(a.seed_b64))
    req = Request("POST", a.url, {"Content-Type": a.content_type})
    created = datetime.datetime.now(datetime.timezone.utc)
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={a.key_id: key}),
    )
    signer.sign(
        req,
        key_id=a.key_id,
        created=created,
        expires=created + datetime.timedelta(seconds=60),
        label="sig1",
        covered_component_ids=COVERED,
        body=body,
    )
    if a.tamper_body:
        body = body[:-1] + bytes([body[-1] ^ 0xFF])

    out = urllib.request.Request(a.url, data=body, method="POST", headers=req.headers)
    try:
        with urllib.request.urlopen(out, timeout=30) as res:
            status, ctype, payload = res.status, res.headers.get("content-type", ""), res.read()
    except urllib.error.HTTPError as e:
        status, ctype, payload = e.code, e.headers.get("content-type", ""), e.read()
    print(status)
    print(ctype)
    if ctype.startswith("image/"):
        print(f"<{len(payload)} bytes>")
    else:
        print(payload.decode("utf-8", "replace"))
    for name in ("Signature-Input", "Signature", "Content-Digest"):
        print(f"{name}: {req.headers[name]}", file=sys.stderr)


if __name__ == "__main__":
    main()
