"""The Valence ID-key signer against the SDKs' published vector and the rules of their specs."""

from appliance.connectors.brightspace import signing
from appliance.connectors.brightspace.oauth import IdKeyAuth


def test_sign_matches_the_valence_sdk_published_vector():
    # Brightspace/valence-sdk-javascript spec/sign_spec.js: D2L.Util.Sign('foobar', 'bar') (data, key).
    assert signing.sign("foobar", "bar") == "8MWnO0rB4dhvQbYdde_vEx3dbLS3RgumO-9WT90kQnQ"


def test_base_string_uppercases_method_lowercases_and_decodes_path_and_drops_the_query():
    assert signing.base_string("get", "/d2l/api/LP/1.46/Users/%7Eme?x=1", 1397500200) == (
        "GET&/d2l/api/lp/1.46/users/~me&1397500200"
    )


def test_query_parameters_do_not_change_the_signatures():
    # valence-sdk-javascript spec/createAuthenticatedUrl_spec.js: the query is not signed.
    keys = {"app_id": "foo", "app_key": "bar", "user_id": "baz", "user_key": "quux"}
    with_query = signing.signed_params("GET", "/d2l/api/foo?bar=baz", 1, **keys)
    without = signing.signed_params("GET", "/d2l/api/foo", 1, **keys)
    assert with_query == without
    assert with_query["x_a"] == "foo" and with_query["x_b"] == "baz" and with_query["x_t"] == "1"
    assert with_query["x_c"] == signing.sign("GET&/d2l/api/foo&1", "bar")
    assert with_query["x_d"] == signing.sign("GET&/d2l/api/foo&1", "quux")
    assert with_query["x_c"] != with_query["x_d"]
    assert "=" not in with_query["x_c"] + with_query["x_d"]


def test_skew_is_learned_like_the_sdk_calculates_it():
    # valence-sdk-javascript spec/calculateSkew_spec.js: server 1397500300 vs local 1397500200 is +100.
    auth = IdKeyAuth({"app_id": "a", "app_key": "b", "user_id": "c", "user_key": "d"}, clock=lambda: 1397500200.4)
    assert auth.retry_after_failure(403, "Timestamp out of range\r\n1397500300")
    assert auth.skew == 100
    assert auth.retry_after_failure(403, "Timestamp out of range 1397500100")
    assert auth.skew == -100
    assert not auth.retry_after_failure(403, "tiddlywinks")
    assert not auth.retry_after_failure(403, "Invalid token")
    assert not auth.retry_after_failure(500, "Timestamp out of range 1")
    assert signing.server_time("Timestamp out of range\r\n1397500300") == 1397500300
