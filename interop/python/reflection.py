"""The shop's gRPC services as a client with none of their protos sees them: through server reflection only.

For each service, lists what the server offers with `grpc.reflection.v1alpha` (grpcio-reflection's descriptor
database) and with `grpc.reflection.v1` (the same messages under the newer service name), checks both versions
describe the same files, then builds message classes from the reflected descriptors and calls the service: creates
an account and a product and reads them back, places an order for them and reads it back.

    python reflection.py account=127.0.0.1:<port> catalog=127.0.0.1:<port> order=127.0.0.1:<port>

Prints one JSON line per service; exits non-zero, saying why, at the first thing that does not hold.
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

SERVICES = {
    "account": "shop.account.v1.AccountService",
    "catalog": "shop.catalog.v1.CatalogService",
    "order": "shop.order.v1.OrderService",
}
# Every server offers these beside its own service.
STANDARD = {"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}
# v1's messages are v1alpha's, field for field; only the service's name differs.
V1_REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
TIMEOUT_SECS = 30


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def reflect_v1(channel, *requests):
    """Asks `grpc.reflection.v1` the given requests on one stream; its answers, in order."""
    call = channel.stream_stream(
        V1_REFLECTION,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    answers = list(call(iter(requests), timeout=TIMEOUT_SECS))
    for answer in answers:
        check(not answer.HasField("error_response"), f"v1 reflection answered {answer.error_response}")
    return answers


def check_reflection(channel, service_name):
    """Both reflection versions list the same services and describe the service's file alike."""
    database = ProtoReflectionDescriptorDatabase(channel)
    v1alpha_services = sorted(database.get_services())
    listing, containing = reflect_v1(
        channel,
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=service_name),
    )
    v1_services = sorted(s.name for s in listing.list_services_response.service)
    check(v1alpha_services == v1_services, f"v1alpha lists {v1alpha_services}, v1 lists {v1_services}")
    check(
        set(v1_services) == STANDARD | {service_name},
        f"expected {sorted(STANDARD | {service_name})}, the server lists {v1_services}",
    )

    v1alpha_file = database.FindFileContainingSymbol(service_name)
    v1_files = [
        descriptor_pb2.FileDescriptorProto.FromString(f)
        for f in containing.file_descriptor_response.file_descriptor_proto
    ]
    v1_file = next((f for f in v1_files if f.name == v1alpha_file.name), None)
    check(v1_file == v1alpha_file, f"v1 and v1alpha describe {v1alpha_file.name} differently")
    return database, v1_services


def caller(channel, pool, service_name):
    """`call(method, **fields)`: a unary call made with message classes built from the reflected descriptors."""
    service = pool.FindServiceByName(service_name)

    def call(method_name, **fields):
        method = service.methods_by_name[method_name]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        stub = channel.unary_unary(
            f"/{service.full_name}/{method.name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        return stub(request_class(**fields), timeout=TIMEOUT_SECS)

    return call


def exercise(calls):
    """Creates and reads back an account, a product and an order for them; what was read, per service."""
    account = calls["account"]("PostAccount", name="Grace Hopper").account
    read_account = calls["account"]("GetAccount", id=account.id).account
    check(read_account.name == "Grace Hopper", f"GetAccount answered {read_account}")

    product = calls["catalog"]("PostProduct", name="Lamp", description="Lights a desk.", price_cents=1999).product
    read_product = calls["catalog"]("GetProduct", id=product.id).product
    check((read_product.name, read_product.price_cents) == ("Lamp", 1999), f"GetProduct answered {read_product}")

    order = calls["order"]("PostOrder", account_id=account.id, lines=[{"product_id": product.id, "quantity": 3}]).order
    read_order = calls["order"]("GetOrder", id=order.id).order
    check(read_order.account_id == account.id, f"GetOrder answered {read_order}")
    check(
        [(line.product_id, line.quantity) for line in read_order.lines] == [(product.id, 3)],
        f"GetOrder answered the lines {read_order.lines}",
    )
    return {"account": read_account, "catalog": read_product, "order": read_order}


def main(addresses):
    check(set(addresses) == set(SERVICES), f"give the address of each of {sorted(SERVICES)}")
    channels = {name: grpc.insecure_channel(address) for name, address in addresses.items()}
    calls, listed = {}, {}
    for name, service_name in SERVICES.items():
        database, listed[name] = check_reflection(channels[name], service_name)
        calls[name] = caller(channels[name], descriptor_pool.DescriptorPool(database), service_name)
    for name, message in exercise(calls).items():
        read = json_format.MessageToDict(message, preserving_proto_field_name=True)
        print(json.dumps({"service": name, "listed": listed[name], "read": read}), flush=True)


if __name__ == "__main__":
    try:
        main(dict(argument.split("=", 1) for argument in sys.argv[1:]))
    except Failed as failure:
        sys.exit(f"FAILED: {failure}")
    except grpc.RpcError as error:
        sys.exit(f"FAILED: a call answered {error.code()}: {error.details()}")
