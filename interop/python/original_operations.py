"""The original Go system's GraphQL operations, run unchanged against the gateway by graphql-core.

Sends graphql-core's standard introspection query (`get_introspection_query()`, default options: what GraphiQL,
Apollo tooling and codegen send), builds a client schema from the answer, validates the original's operations
against it on this side, then runs them over HTTP with String-typed id variables: the three mutations the original
clients make — an account, a product, an order for them — and its query of an account with its orders. Last, what
a careless client sends (truncated JSON, a form post) must come back as GraphQL errors with a code to act on.

    python original_operations.py http://127.0.0.1:<port>/graphql

Prints one JSON line per step; exits non-zero, saying why, at the first thing that does not hold.
"""

import json
import sys
import urllib.request

from graphql import build_client_schema, get_introspection_query, parse, validate

# The original's operations, written against its schema (ids are String there).
CREATE_ACCOUNT = """
mutation CreateAccount($name: String!) {
  createAccount(account: {name: $name}) { id name }
}
"""
CREATE_PRODUCT = """
mutation CreateProduct($name: String!, $description: String!, $price: Float!) {
  createProduct(product: {name: $name, description: $description, price: $price}) { id name description price }
}
"""
CREATE_ORDER = """
mutation CreateOrder($accountId: String!, $productId: String!, $quantity: Int!) {
  createOrder(order: {accountId: $accountId, products: [{id: $productId, quantity: $quantity}]}) {
    id createdAt totalPrice
    products { id name description price quantity }
  }
}
"""
ACCOUNT_WITH_ORDERS = """
query AccountWithOrders($id: String) {
  accounts(id: $id) {
    id name
    orders { id createdAt totalPrice products { name quantity price } }
  }
}
"""
OPERATIONS = {
    "CreateAccount": CREATE_ACCOUNT,
    "CreateProduct": CREATE_PRODUCT,
    "CreateOrder": CREATE_ORDER,
    "AccountWithOrders": ACCOUNT_WITH_ORDERS,
}


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def post(endpoint, query, variables=None):
    """One GraphQL-over-HTTP POST; the answer's `data`, or Failed with its errors."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        endpoint, data=body, headers={"content-type": "application/json", "accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as error:
        answer = json.load(error)
    check(not answer.get("errors"), f"the gateway answered errors: {json.dumps(answer)}")
    return answer["data"]


def refusal(endpoint, content_type, body):
    """A raw POST the gateway must refuse; its HTTP status and the code of its one GraphQL error."""
    request = urllib.request.Request(endpoint, data=body, headers={"content-type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raise Failed(f"{body!r} as {content_type} was answered {response.status}: {response.read()!r}")
    except urllib.error.HTTPError as error:
        answer = json.load(error)
        return error.code, answer["errors"][0]["extensions"]["code"]


def report(step, **facts):
    print(json.dumps({"step": step, **facts}), flush=True)


def main(endpoint):
    introspection = post(endpoint, get_introspection_query())
    schema = build_client_schema(introspection)
    report("introspection", types=len(schema.type_map), query=schema.query_type.name)

    for name, operation in OPERATIONS.items():
        errors = validate(schema, parse(operation))
        check(not errors, f"{name} does not validate against the introspected schema: {errors}")
    report("validation", operations=list(OPERATIONS))

    account = post(endpoint, CREATE_ACCOUNT, {"name": "Ada Lovelace"})["createAccount"]
    check(account["name"] == "Ada Lovelace", f"createAccount answered {account}")
    product = post(
        endpoint, CREATE_PRODUCT, {"name": "Kettle", "description": "Boils water.", "price": 24.99}
    )["createProduct"]
    check(product["price"] == 24.99, f"createProduct answered {product}")
    order = post(endpoint, CREATE_ORDER, {"accountId": account["id"], "productId": product["id"], "quantity": 2})[
        "createOrder"
    ]
    report("mutations", account=account, product=product, order=order)
    # The original answered the order priced; so must this gateway when it knows the account and product.
    check(order["totalPrice"] == 49.98, f"createOrder answered an order not priced at 2 x 24.99: {order}")
    line = order["products"][0]
    check(
        (line["name"], line["description"], line["price"], line["quantity"]) == ("Kettle", "Boils water.", 24.99, 2),
        f"createOrder answered the line {line}",
    )

    accounts = post(endpoint, ACCOUNT_WITH_ORDERS, {"id": account["id"]})["accounts"]
    report("query", accounts=accounts)
    check(len(accounts) == 1 and accounts[0]["id"] == account["id"], f"accounts(id) answered {accounts}")
    orders = accounts[0]["orders"]
    check([o["id"] for o in orders] == [order["id"]], f"the account's orders are {orders}")
    check(orders[0]["totalPrice"] == 49.98, f"the account's order is not priced: {orders[0]}")

    # What a client gets wrong is answered as GraphQL errors in JSON, with a code to act on.
    malformed = refusal(endpoint, "application/json", b'{"query": "{ accounts { id } }"')
    form = refusal(endpoint, "application/x-www-form-urlencoded", b"query=%7B+accounts+%7B+id+%7D+%7D")
    report("refusals", malformed=malformed, form=form)
    check(malformed == (400, "BAD_REQUEST"), f"a truncated JSON body was answered {malformed}")
    check(form == (415, "UNSUPPORTED_MEDIA_TYPE"), f"a form post was answered {form}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python original_operations.py <GraphQL endpoint URL>")
    try:
        main(sys.argv[1])
    except Failed as failure:
        sys.exit(f"FAILED: {failure}")
