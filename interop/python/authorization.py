"""Who may do what, as a Python client sees it through GraphQL, with bearer tokens of the shop's development issuer.

Finds the issuer's keys by OpenID Connect discovery on the gateway and checks that the key each token names is
published there; validates every operation against the schema graphql-core builds from introspection; then, with
the tokens of a staff member and two customers: staff creates a product that tracks its stock; each customer opens an
account and orders; without a token, accounts are refused UNAUTHENTICATED; staff restocks while a customer is refused
FORBIDDEN; and each way of reaching the other customer's account or order (cancelling it included) answers exactly
what the same question about an id nothing has answers.

    python authorization.py http://127.0.0.1:<port> <staff token> <alice's token> <bob's token>

Prints one JSON line per step; exits non-zero, saying why, at the first thing that does not hold.
"""

import base64
import json
import sys
import urllib.error
import urllib.request

from graphql import build_client_schema, get_introspection_query, parse, validate

MISSING = "0190a0e0-0000-7000-8000-000000000000"
CREATE_PRODUCT = (
    'mutation { createProduct(product: {name: "Kettle", description: "Boils water", price: 24.99, stock: 5}) '
    "{ id stock } }"
)
ADJUST_STOCK = "mutation Adjust($id: String!) { adjustStock(id: $id, delta: 3) { id stock } }"
PRODUCT_STOCK = "query Stock($id: String!) { products(id: $id) { stock } }"
CREATE_ACCOUNT = "mutation CreateAccount($name: String!) { createAccount(account: {name: $name}) { id owner } }"
CREATE_ORDER = """
mutation CreateOrder($accountId: String!, $productId: String!) {
  createOrder(order: {accountId: $accountId, products: [{id: $productId, quantity: 1}]}) { id }
}
"""
ACCOUNTS = "query { accounts { id } }"
# Every way to reach an account or an order by id, nested and aliased.
PROBES = [
    "query Probe($id: String!) { accounts(id: $id) { id name orders { id } } }",
    "query Probe($id: String!) { order(id: $id) { id accountId status } }",
    "query Probe($id: String!) { mine: accounts { id } theirs: accounts(id: $id) { orders { id } } }",
    "mutation Probe($id: String!) { cancelOrder(id: $id) { id status history { kind } } }",
]


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def request(url, body=None, token=None):
    """A GET (or a JSON POST when `body` is given); the HTTP status and the JSON answer."""
    headers = {"accept": "application/json"}
    if body is not None:
        headers["content-type"] = "application/json"
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def kid(token):
    """The `kid` a JWT's header names (its first part, base64url without padding)."""
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def main(base, staff, alice, bob):
    status, configuration = request(f"{base}/.well-known/openid-configuration")
    check(status == 200, f"discovery answered {status}")
    status, keys = request(configuration["jwks_uri"])
    check(status == 200, f"the JWKS answered {status}")
    published = {key["kid"] for key in keys["keys"]}
    check(all(kid(token) in published for token in (staff, alice, bob)), f"unpublished kid; published: {published}")
    print(json.dumps({"step": "discovery", "issuer": configuration["issuer"], "keys": len(published)}))

    endpoint = f"{base}/graphql"
    status, introspection = request(endpoint, {"query": get_introspection_query()})
    check(status == 200 and "data" in introspection, f"introspection without a token answered {status}")
    schema = build_client_schema(introspection["data"])
    for operation in [CREATE_PRODUCT, ADJUST_STOCK, PRODUCT_STOCK, CREATE_ACCOUNT, CREATE_ORDER, ACCOUNTS, *PROBES]:
        errors = validate(schema, parse(operation))
        check(not errors, f"invalid against the schema: {operation}: {errors}")
    print(json.dumps({"step": "validation"}))

    def graphql(token, query, variables=None):
        status, answer = request(endpoint, {"query": query, "variables": variables or {}}, token)
        check(status == 200, f"{query} answered {status}: {answer}")
        return answer

    def data(token, query, variables=None):
        answer = graphql(token, query, variables)
        check(not answer.get("errors"), f"{query} answered errors: {answer}")
        return answer["data"]

    product = data(staff, CREATE_PRODUCT)["createProduct"]["id"]
    ids = {}
    for name, token in (("alice", alice), ("bob", bob)):
        account = data(token, CREATE_ACCOUNT, {"name": name.title()})["createAccount"]
        check(account["owner"] == name, f"the account's owner is {account['owner']}, not {name}")
        order = data(token, CREATE_ORDER, {"accountId": account["id"], "productId": product})["createOrder"]
        ids[name] = (account["id"], order["id"])
    print(json.dumps({"step": "placed", "customers": len(ids)}))

    anonymous = graphql(None, ACCOUNTS)
    codes = [error["extensions"]["code"] for error in anonymous.get("errors", [])]
    check(codes == ["UNAUTHENTICATED"], f"accounts without a token: {anonymous}")
    print(json.dumps({"step": "anonymous", "codes": codes}))

    refused = graphql(alice, ADJUST_STOCK, {"id": product})
    codes = [error["extensions"]["code"] for error in refused.get("errors", [])]
    check(codes == ["FORBIDDEN"], f"a customer adjusting stock: {refused}")
    before = data(staff, PRODUCT_STOCK, {"id": product})["products"][0]["stock"]
    after = data(staff, ADJUST_STOCK, {"id": product})["adjustStock"]["stock"]
    # The two orders may still be reserving meanwhile: each can take one unit between the read and the restock.
    check(before + 1 <= after <= before + 3, f"restocked by 3 from {before}, now {after}")
    print(json.dumps({"step": "stock", "customer": codes, "restocked": after is not None}))

    compared = 0
    for probe in PROBES:
        for foreign in ids["alice"]:
            seen = json.dumps(graphql(bob, probe, {"id": foreign}), sort_keys=True)
            missing = json.dumps(graphql(bob, probe, {"id": MISSING}), sort_keys=True)
            check(seen.replace(foreign, MISSING) == missing, f"{probe} with alice's {foreign}: {seen} vs {missing}")
            compared += 1
    foreign_order = graphql(bob, CREATE_ORDER, {"accountId": ids["alice"][0], "productId": product})
    missing_order = graphql(bob, CREATE_ORDER, {"accountId": MISSING, "productId": product})
    check(
        json.dumps(foreign_order).replace(ids["alice"][0], MISSING) == json.dumps(missing_order),
        f"ordering for alice's account: {foreign_order} vs {missing_order}",
    )
    staff_sees = len(data(staff, ACCOUNTS)["accounts"])
    print(json.dumps({"step": "others_look_missing", "compared": compared + 1, "staff_sees": staff_sees}))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    try:
        main(*sys.argv[1:])
    except Failed as failure:
        sys.exit(f"FAILED: {failure}")
