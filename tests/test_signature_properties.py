"""Property: any change to a validly signed app-proxy query is rejected."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.shopify import ProxyVerificationError, Shopify, sign_proxy_query
from tests.factories import TEST_API_KEY, TEST_API_SECRET

SHOPIFY = Shopify(api_key=TEST_API_KEY, api_secret=TEST_API_SECRET)
keys = st.text(st.characters(codec="utf-8", exclude_characters="&=#\x00"), min_size=1, max_size=12)
values = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)


def _verify(query: str) -> None:
    SHOPIFY.verify_app_proxy(path="/proxy/history", query_string=query)


@st.composite
def signed_queries(draw: st.DrawFn) -> list[tuple[str, str]]:
    extra = draw(st.dictionaries(keys, values, max_size=4))
    params = {
        **{k: v for k, v in extra.items() if k not in ("signature", "timestamp", "shop")},
        "shop": "prop-shop.myshopify.com",
        "path_prefix": "/apps/chat",
        "timestamp": str(int(time.time())),
        "logged_in_customer_id": draw(st.sampled_from(["", "12345"])),
    }
    params["signature"] = sign_proxy_query(params, TEST_API_SECRET)
    return list(params.items())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signed_queries())
def test_a_signed_query_verifies(pairs: list[tuple[str, str]]) -> None:
    _verify(urlencode(pairs))


MUTATIONS = ["value", "key", "add", "drop", "timestamp", "signature", "duplicate"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signed_queries(), st.sampled_from(MUTATIONS), st.data())
def test_any_change_is_rejected(
    pairs: list[tuple[str, str]], mutation: str, data: st.DataObject
) -> None:
    signed = dict(pairs)
    names = [k for k in signed if k != "signature"]
    if mutation == "value":
        name = data.draw(st.sampled_from(names))
        new = data.draw(values.filter(lambda v: v != signed[name]))
        signed[name] = new
    elif mutation == "key":
        name = data.draw(st.sampled_from(names))
        new_key = data.draw(keys.filter(lambda k: k not in signed))
        signed[new_key] = signed.pop(name)
    elif mutation == "add":
        new_key = data.draw(keys.filter(lambda k: k not in signed))
        signed[new_key] = data.draw(values)
    elif mutation == "drop":
        del signed[data.draw(st.sampled_from(names))]
    elif mutation == "timestamp":
        signed["timestamp"] = str(
            int(signed["timestamp"]) + data.draw(st.integers(-100, 100).filter(lambda n: n != 0))
        )
    elif mutation == "signature":
        position = data.draw(st.integers(0, 63))
        old = signed["signature"][position]
        replacement = data.draw(st.sampled_from("0123456789abcdef").filter(lambda c: c != old))
        signed["signature"] = (
            signed["signature"][:position] + replacement + signed["signature"][position + 1 :]
        )
    query = urlencode(list(signed.items()))
    if mutation == "duplicate":
        name = data.draw(st.sampled_from([*names, "signature"]))
        query += "&" + urlencode({name: data.draw(values)})
    if dict(parse_qsl(query, keep_blank_values=True)) == dict(pairs) and mutation != "duplicate":
        return  # the change made no difference once encoded (e.g. a key that decodes back)
    with pytest.raises(ProxyVerificationError):
        _verify(query)
