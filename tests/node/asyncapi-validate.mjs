// Validates an AsyncAPI document with the official parser: `node asyncapi-validate.mjs FILE`.
// Prints one JSON object: the diagnostics, and what the parsed document holds (channels,
// operations, messages, security schemes), so the Python test can check both. Exit 1 on errors.
import { readFile } from 'node:fs/promises';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const path = process.argv[2];
const { document, diagnostics } = await new Parser().parse(await readFile(path, 'utf8'), { source: path });
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
const summary = {
  diagnostics: diagnostics.map((d) => ({ severity: d.severity, code: d.code, message: d.message, path: d.path })),
  errors: errors.length,
};
if (document) {
  summary.version = document.version();
  summary.channels = document.channels().all().map((c) => ({ id: c.id(), address: c.address() }));
  summary.operations = document.operations().all().map((o) => ({
    id: o.id(), action: o.action(), messages: o.messages().all().map((m) => m.id()),
    http: o.bindings().get('http')?.value() ?? null,
  }));
  summary.messages = document.components().messages().all().map((m) => ({
    id: m.id(), name: m.name(), statusCode: m.bindings().get('http')?.value()?.statusCode ?? null,
  }));
  summary.securitySchemes = document.components().securitySchemes().all().map((s) => ({ id: s.id(), type: s.type() }));
}
console.log(JSON.stringify(summary, null, 1));
process.exit(errors.length || !document ? 1 : 0);
