"""Schema Registry decoding: values and keys in the Confluent wire format, decoded with their
schema (Avro, Protobuf, JSON Schema) into JSON, the same way at the consumer and in replay.

`client.py` asks a Confluent-compatible registry over HTTP (in a thread: never on the event
loop); `schemas.py` compiles what it answers into a reader per schema id; `avro_json.py` is the
JSON mapping of Avro data; `decoder.py` keeps the readers (bounded), fetches the ones a batch of
records needs before it is decoded, and turns each value into a `WireDecoded`.
"""

from crm_events.registry.decoder import RegistryDecoder, registry_decoder

__all__ = ["RegistryDecoder", "registry_decoder"]
