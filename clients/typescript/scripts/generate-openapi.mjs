#!/usr/bin/env node
// Regenerates src/openapi.ts from a running server (`--server URL`) or from the binary
// (FLOODGATE_BIN, else ../../target/debug/floodgate), started on a scratch SQLite file.
// Usage: npm run generate [-- --server http://127.0.0.1:7070]

import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { OPENAPI_TS, renderFromServer } from "./openapi.mjs";
import { startServer } from "../test/helpers/server.mjs";

const { values } = parseArgs({ options: { server: { type: "string" } } });
let server;
try {
  if (values.server === undefined) server = await startServer();
  const text = await renderFromServer(values.server ?? server.url);
  await writeFile(OPENAPI_TS, text);
  console.log(`wrote ${OPENAPI_TS.pathname} (${text.length} characters)`);
} finally {
  await server?.close();
}
