// src/openapi.ts must be what openapi-typescript generates from the binary's own document:
// the server is started, its /openapi.json rendered again, and any difference fails.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";

import { OPENAPI_TS, renderFromServer } from "../scripts/openapi.mjs";
import { startServer } from "./helpers/server.mjs";

test("src/openapi.ts matches the running server's /openapi.json", async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  const fresh = await renderFromServer(server.url);
  const checkedIn = await readFile(OPENAPI_TS, "utf8");
  if (fresh !== checkedIn) {
    const a = checkedIn.split("\n");
    const b = fresh.split("\n");
    let line = 0;
    while (line < a.length && a[line] === b[line]) line++;
    assert.fail(
      `src/openapi.ts is out of date with the server's document (first difference at line ${line + 1}:\n` +
        `  checked in: ${JSON.stringify(a[line])}\n  generated:  ${JSON.stringify(b[line])}).\n` +
        "Run `npm run generate && npm run build` and check both in.",
    );
  }
});
