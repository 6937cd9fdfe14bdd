"""The fast HS256 check of api/auth.py against PyJWT's, on tokens good, bad and odd."""
from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.auth import _hs256_claims, reference_claims

SECRET = "s3cret"


def b64(obj) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def verdict(fn, token):
    try:
        return ("ok", fn(token, SECRET))
    except jwt.PyJWTError:
        return ("refused", None)


def fast_or_reference(token, secret):
    found = _hs256_claims(token, secret)
    return found if found is not None else reference_claims(token, secret)


_claims = st.fixed_dictionaries({}, optional={
    "sub": st.one_of(st.text(max_size=10), st.integers()), "role": st.sampled_from(["customer", "x"]),
    "exp": st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=3)),
    "nbf": st.integers(), "name": st.text(max_size=5)})
_headers = st.one_of(st.just({"alg": "HS256", "typ": "JWT"}), st.just({"alg": "HS256"}),
                     st.just({"typ": "JWT", "alg": "HS256"}), st.just({"alg": "HS512", "typ": "JWT"}),
                     st.just({"alg": "none"}), st.just({"alg": "HS256", "kid": "k1"}),
                     st.just({"alg": "HS256", "typ": "other"}))


@settings(max_examples=400, deadline=None, database=None)
@given(claims=_claims, header=_headers, secret=st.sampled_from([SECRET, "other"]),
       damage=st.sampled_from(["none", "sig", "body", "head", "segments", "padding", "junk"]))
def test_the_fast_path_decides_as_pyjwt_does(claims, header, secret, damage):
    head, body = b64(header), b64(claims)
    alg = header.get("alg") if header.get("alg") in ("HS256", "HS512") else "HS256"
    good = jwt.encode(claims, secret, algorithm=alg, headers={k: v for k, v in header.items() if k != "alg"})
    sig = good.split(".")[2]
    token = {"none": f"{head}.{body}.{sig}" if header.get("alg") == "HS256" else good,
             "sig": f"{head}.{body}.{sig[:-2]}AA",
             "body": f"{head}.{b64({**claims, 'sub': 'mallory'})}.{sig}",
             "head": f"{b64({'alg': 'HS256', 'typ': 'JWT', 'x': 1})}.{body}.{sig}",
             "segments": f"{head}.{body}",
             "padding": f"{head}.{body}=.{sig}",
             "junk": f"{head}.{body}.!!!"}[damage]
    assert verdict(fast_or_reference, token) == verdict(reference_claims, token)


def test_a_good_token_takes_the_fast_path():
    token = jwt.encode({"sub": "u", "role": "customer", "exp": int(time.time()) + 60}, SECRET)
    assert _hs256_claims(token, SECRET)["sub"] == "u"
    with pytest.raises(jwt.InvalidSignatureError):
        _hs256_claims(token, "wrong")
