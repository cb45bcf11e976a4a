"""A registered Protobuf schema as the FileDescriptorProtos a descriptor pool takes.

Registries hand a Protobuf schema out in one of two forms: `.proto` text (Confluent's), or a
serialized FileDescriptorProto in base64 (Apicurio keeps what confluent-kafka's serializer
registers that way). Text is compiled by protoc (grpcio-tools' bundled compiler, in a scratch
folder); imports come from the schema's references (by subject and version) or, for Google's
well-known types, from protobuf's own copies.
"""

from __future__ import annotations

import base64
import binascii
import importlib.resources
import re
import tempfile
from pathlib import Path

from google.protobuf import (  # noqa: F401 - imported for the default pool: the well-known types
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.message import DecodeError

from crm_events.registry.client import RegisteredSchema

MAIN_FILE = "aetherlink_registered.proto"
_BASE64 = re.compile(rb"[A-Za-z0-9+/=\s]+")

PROTO_NOT_COMPILED = "the .proto text does not compile: {error}"
IMPORT_MISSING = "the schema imports {name!r}, which is neither referenced nor well-known"


class SchemaInvalid(ValueError):
    """A schema that cannot be read (the registry's answer, not the record, is at fault)."""


def _descriptor_bytes(text: str) -> bytes | None:
    """The serialized descriptor, when the text is one in base64 (no .proto has only those chars:
    it needs spaces, braces and semicolons)."""
    raw = text.encode()
    if not _BASE64.fullmatch(raw) or b" " in raw.strip():
        return None
    try:
        return base64.b64decode(raw, validate=False)
    except (binascii.Error, ValueError):
        return None


def _well_known(name: str) -> descriptor_pb2.FileDescriptorProto | None:
    try:
        found = descriptor_pool.Default().FindFileByName(name)
    except KeyError:
        return None
    proto = descriptor_pb2.FileDescriptorProto()
    found.CopyToProto(proto)
    return proto


def _compile(files: dict[str, str]) -> list[descriptor_pb2.FileDescriptorProto]:
    """protoc over `files` (name -> .proto text); every file with its imports, in order."""
    from grpc_tools import protoc  # imported here: only .proto text needs the compiler

    includes = importlib.resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory(prefix="aetherlink-proto-") as folder:
        for name, text in files.items():
            path = Path(folder) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        out = Path(folder) / "set.pb"
        status = protoc.main([
            "protoc", f"-I{folder}", f"-I{includes}", "--include_imports",
            f"--descriptor_set_out={out}", MAIN_FILE,
        ])
        if status != 0 or not out.exists():
            raise SchemaInvalid(PROTO_NOT_COMPILED.format(error=f"protoc exit status {status}"))
        descriptors = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return list(descriptors.file)


def _texts(schema: RegisteredSchema, name: str) -> dict[str, str]:
    texts = {name: schema.text}
    for ref_name, referenced in schema.referenced.items():
        texts[ref_name] = referenced.text
    return texts


def _parsed(schema: RegisteredSchema, name: str) -> descriptor_pb2.FileDescriptorProto | None:
    raw = _descriptor_bytes(schema.text)
    if raw is None:
        return None
    try:
        proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
    except DecodeError:
        return None
    if not proto.name:
        proto.name = name
    return proto


def file_descriptors(schema: RegisteredSchema) -> list[descriptor_pb2.FileDescriptorProto]:
    """The schema's file and everything it imports, dependencies first, the schema's own last."""
    main = _parsed(schema, MAIN_FILE)
    if main is None:  # .proto text: protoc orders the files itself (--include_imports)
        return _compile(_texts(schema, MAIN_FILE))
    ordered: list[descriptor_pb2.FileDescriptorProto] = []
    _add_with_dependencies(main, schema, ordered, seen=set())
    return ordered


def _add_with_dependencies(
    proto: descriptor_pb2.FileDescriptorProto, schema: RegisteredSchema,
    ordered: list[descriptor_pb2.FileDescriptorProto], seen: set[str],
) -> None:
    seen.add(proto.name)
    for dependency in proto.dependency:
        if dependency in seen:
            continue
        referenced = schema.referenced.get(dependency)
        found = _parsed(referenced, dependency) if referenced is not None else _well_known(dependency)
        if found is None and referenced is not None:
            compiled = _compile({dependency: referenced.text, **_texts(referenced, dependency)})
            found = compiled[-1]
            for extra in compiled[:-1]:
                if extra.name not in seen:
                    seen.add(extra.name)
                    ordered.append(extra)
        if found is None:
            raise SchemaInvalid(IMPORT_MISSING.format(name=dependency))
        _add_with_dependencies(found, schema, ordered, seen)
    ordered.append(proto)
