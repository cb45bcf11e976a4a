"""Readers compiled once per schema: the bytes after the wire-format header in, JSON out.

A reader raises (any exception: the bytes are the producer's, and the libraries below raise
many kinds) when the bytes do not fit the schema; `decoder.py` marks such a record.
"""

from __future__ import annotations

import io
import json
from typing import Any, Protocol

import fastavro
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from crm_events.core.records import (
    MAX_VALUE_DEPTH,
    VALUE_AVRO,
    VALUE_JSON_SCHEMA,
    VALUE_PROTOBUF,
    json_faithful_loads,
)
from crm_events.core.wire_format import message_indexes_parse
from crm_events.registry.avro_guard import ZERO_WIDTH_ITEMS, zero_width_array
from crm_events.registry.avro_json import avro_to_json
from crm_events.registry.client import RegisteredSchema
from crm_events.registry.protobuf_files import SchemaInvalid, file_descriptors

TRAILING_BYTES = "{count} bytes after the value its schema describes"
NO_SUCH_MESSAGE = "the message indexes {indexes} name no message of the schema"
SCHEMA_TYPE_UNKNOWN = "schema type {schema_type!r} is not one we decode"
AVRO_SCHEMA_INVALID = "the Avro schema cannot be read: {error}"


class SchemaReader(Protocol):
    format: str

    def read(self, body: bytes) -> Any: ...


class AvroReader:
    format = VALUE_AVRO

    def __init__(self, schema: RegisteredSchema) -> None:
        named: dict[str, Any] = {}
        try:
            # Referenced schemas first (their named types), in the order the registry gave them.
            for referenced in schema.referenced.values():
                fastavro.parse_schema(json.loads(referenced.text), named_schemas=named)
            self.schema = fastavro.parse_schema(json.loads(schema.text), named_schemas=named)
        except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as error:
            raise SchemaInvalid(AVRO_SCHEMA_INVALID.format(error=error)) from None
        items = zero_width_array(self.schema, named)
        if items is not None:
            raise SchemaInvalid(ZERO_WIDTH_ITEMS.format(items=items))

    def read(self, body: bytes) -> Any:
        stream = io.BytesIO(body)
        datum = fastavro.schemaless_reader(stream, self.schema, None)
        if (left := len(body) - stream.tell()) > 0:
            raise ValueError(TRAILING_BYTES.format(count=left))
        return avro_to_json(datum, limit=MAX_VALUE_DEPTH)


class ProtobufReader:
    format = VALUE_PROTOBUF

    def __init__(self, schema: RegisteredSchema) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        files = file_descriptors(schema)
        try:
            for proto in files:
                self.pool.Add(proto)
        except (TypeError, ValueError) as error:
            raise SchemaInvalid(str(error)) from None
        self.file: descriptor_pb2.FileDescriptorProto = files[-1]
        self.classes: dict[tuple[int, ...], type[Message]] = {}

    def _message_class(self, indexes: tuple[int, ...]) -> type[Message]:
        found = self.classes.get(indexes)
        if found is None:
            found = message_factory.GetMessageClass(self.pool.FindMessageTypeByName(self._full_name(indexes)))
            self.classes[indexes] = found
        return found

    def _full_name(self, indexes: tuple[int, ...]) -> str:
        names, messages = [], self.file.message_type
        for index in indexes:
            if not 0 <= index < len(messages):
                raise ValueError(NO_SUCH_MESSAGE.format(indexes=list(indexes)))
            names.append(messages[index].name)
            messages = messages[index].nested_type
        return ".".join(([self.file.package] if self.file.package else []) + names)

    def read(self, body: bytes) -> Any:
        indexes, data = message_indexes_parse(body)
        message = self._message_class(indexes).FromString(data)
        value = json_format.MessageToDict(
            message, always_print_fields_with_no_presence=True, descriptor_pool=self.pool
        )
        return avro_to_json(value, limit=MAX_VALUE_DEPTH)  # the strict-JSON check: depth, text


class JsonSchemaReader:
    """JSON Schema values are JSON already: carried when they are JSON we can carry faithfully
    (not validated against the schema: that is the producer's serializer's job)."""

    format = VALUE_JSON_SCHEMA

    def __init__(self, schema: RegisteredSchema) -> None:
        self.schema = schema

    def read(self, body: bytes) -> Any:
        return json_faithful_loads(body.decode("utf-8"))


READERS: dict[str, type[AvroReader] | type[ProtobufReader] | type[JsonSchemaReader]] = {
    "AVRO": AvroReader, "PROTOBUF": ProtobufReader, "JSON": JsonSchemaReader,
}


def reader_compile(schema: RegisteredSchema) -> SchemaReader:
    """A reader for the schema; SchemaInvalid when it cannot be read."""
    reader = READERS.get(schema.schema_type)
    if reader is None:
        raise SchemaInvalid(SCHEMA_TYPE_UNKNOWN.format(schema_type=schema.schema_type))
    return reader(schema)
