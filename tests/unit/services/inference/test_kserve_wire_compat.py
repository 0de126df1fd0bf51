"""Privet's KServe v2 proto against tritonclient's own (grpc_service.proto, model_config.proto):
every method Privet serves, and every field and enum value Privet declares, has tritonclient's
name, number, type and label, so the stock client reads Privet's answers. Each side is read in
a process of its own: both protos are package `inference`, which one protobuf pool refuses twice."""

from __future__ import annotations

import json
import subprocess
import sys

DUMP = r'''
import importlib, json, sys
from google.protobuf import descriptor_pb2
files = {}
for module in sys.argv[1:]:
    proto = descriptor_pb2.FileDescriptorProto()
    importlib.import_module(module).DESCRIPTOR.CopyToProto(proto)
    files[module] = proto
messages, enums, methods = {}, {}, {}
def walk(prefix, message):
    name = f"{prefix}.{message.name}"
    messages[name] = {f.name: [f.number, f.type, f.label, f.type_name] for f in message.field}
    for nested in message.nested_type:
        if not nested.options.map_entry:
            walk(name, nested)
for proto in files.values():
    for message in proto.message_type:
        walk(proto.package, message)
    for enum in proto.enum_type:
        enums[f"{proto.package}.{enum.name}"] = {v.name: v.number for v in enum.value}
    for service in proto.service:
        for m in service.method:
            methods[f"{proto.package}.{service.name}/{m.name}"] = [m.input_type, m.output_type, m.client_streaming, m.server_streaming]
print(json.dumps({"messages": messages, "enums": enums, "methods": methods}))
'''


def _dump(*modules: str) -> dict:
    out = subprocess.run([sys.executable, "-c", DUMP, *modules], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_privet_speaks_tritons_wire_format() -> None:
    ours = _dump("privet.kserve.v2.grpc_predict_v2_pb2", "privet.kserve.v2.model_config_pb2")
    theirs = _dump("tritonclient.grpc.service_pb2", "tritonclient.grpc.model_config_pb2")
    for method, signature in ours["methods"].items():
        assert theirs["methods"].get(method) == signature, method
    for message, fields in ours["messages"].items():
        assert message in theirs["messages"], message
        for field, wire in fields.items():
            assert theirs["messages"][message].get(field) == wire, f"{message}.{field}"
    for enum, values in ours["enums"].items():
        assert {k: theirs["enums"][enum].get(k) for k in values} == values, enum


def test_discovery_is_served() -> None:
    methods = _dump("privet.kserve.v2.grpc_predict_v2_pb2")["methods"]
    assert {"inference.GRPCInferenceService/RepositoryIndex", "inference.GRPCInferenceService/ModelConfig"} <= set(methods)
