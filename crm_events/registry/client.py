"""A Confluent-compatible Schema Registry over HTTP: the schema of an id, a subject's version.

Blocking calls (the standard library's urllib), made in a worker thread by `decoder.py`, never
on an event loop. Basic auth or a bearer token, and a CA file for https.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from crm_events.config import RegistryConfig

ACCEPT = "application/vnd.schemaregistry.v1+json, application/json"
REQUEST_TIMEOUT = 5.0
# A body bigger than this is not a schema: refuse it rather than hold it.
MAX_RESPONSE_BYTES = 8 << 20

UNKNOWN_ID = "the registry does not know schema id {schema_id}"
UNKNOWN_SUBJECT = "the registry does not know subject {subject!r} version {version}"
UNREACHABLE = "the registry cannot be reached: {error}"
REFUSED = "the registry answered HTTP {status}: {body}"
NOT_JSON = "the registry's answer is not a JSON object"


class SchemaUnknown(LookupError):
    """The registry answered, and does not know the schema (a 404)."""


class RegistryUnreachable(OSError):
    """No answer from the registry, or an answer that is no answer (5xx, 401, a proxy's page)."""


@dataclass(frozen=True, slots=True)
class SchemaReference:
    name: str
    subject: str
    version: int


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """What the registry says of one schema: its text, type and the schemas it references."""

    text: str
    schema_type: str  # AVRO, PROTOBUF or JSON (the registry leaves it out for Avro)
    references: tuple[SchemaReference, ...] = ()
    subject: str | None = None
    version: int | None = None
    referenced: dict[str, RegisteredSchema] = field(default_factory=dict)


def _schema_of(answer: dict[str, Any]) -> RegisteredSchema:
    references = tuple(
        SchemaReference(name=str(ref["name"]), subject=str(ref["subject"]), version=int(ref["version"]))
        for ref in answer.get("references") or ()
    )
    return RegisteredSchema(
        text=str(answer["schema"]), schema_type=str(answer.get("schemaType") or "AVRO").upper(),
        references=references,
        subject=answer.get("subject"), version=answer.get("version"),
    )


class RegistryClient:
    """Blocking requests to one registry; call them from a thread."""

    def __init__(self, config: RegistryConfig) -> None:
        self.base = config.url
        self.headers = {"Accept": ACCEPT}
        if config.basic_auth:
            self.headers["Authorization"] = "Basic " + base64.b64encode(config.basic_auth.encode()).decode()
        elif config.bearer_token:
            self.headers["Authorization"] = f"Bearer {config.bearer_token}"
        self.context = ssl.create_default_context(cafile=config.cafile or None)

    def schema_by_id(self, schema_id: int) -> RegisteredSchema:
        answer = self._get(f"/schemas/ids/{schema_id}", UNKNOWN_ID.format(schema_id=schema_id))
        return self._with_references(_schema_of(answer))

    def subject_version(self, subject: str, version: int) -> RegisteredSchema:
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions/{version}"
        answer = self._get(path, UNKNOWN_SUBJECT.format(subject=subject, version=version))
        return self._with_references(_schema_of(answer))

    def subject_of(self, schema_id: int) -> tuple[str | None, int | None]:
        """The subject and version the registry files this id under (the first), if it says."""
        try:
            answer = self._get_any(f"/schemas/ids/{schema_id}/versions", "")
        except (SchemaUnknown, RegistryUnreachable):
            return None, None  # an older registry without the endpoint: the id alone is enough
        if isinstance(answer, list) and answer and isinstance(answer[0], dict):
            subject, version = answer[0].get("subject"), answer[0].get("version")
            return (subject if isinstance(subject, str) else None), (
                version if type(version) is int else None
            )
        return None, None

    def _with_references(self, schema: RegisteredSchema) -> RegisteredSchema:
        # Referenced schemas (Protobuf imports, Avro named types) by subject and version,
        # depth first; a cycle is the registry's to refuse, so each name is fetched once here.
        for ref in schema.references:
            if ref.name not in schema.referenced:
                found = self.subject_version(ref.subject, ref.version)
                schema.referenced.update(found.referenced)
                schema.referenced[ref.name] = found
        return schema

    def _get(self, path: str, unknown: str) -> dict[str, Any]:
        answer = self._get_any(path, unknown)
        if not isinstance(answer, dict):
            raise RegistryUnreachable(NOT_JSON)
        return answer

    def _get_any(self, path: str, unknown: str) -> Any:
        request = urllib.request.Request(self.base + path, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT, context=self.context) as response:
                body = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                raise SchemaUnknown(unknown) from None
            text = error.read(200).decode("utf-8", "replace")
            raise RegistryUnreachable(REFUSED.format(status=error.code, body=text)) from None
        except (OSError, ValueError) as error:  # URLError, timeouts, TLS, a malformed URL
            raise RegistryUnreachable(UNREACHABLE.format(error=getattr(error, "reason", error))) from None
        if len(body) > MAX_RESPONSE_BYTES:
            raise RegistryUnreachable(NOT_JSON)
        try:
            return json.loads(body)
        except ValueError:
            raise RegistryUnreachable(NOT_JSON) from None
