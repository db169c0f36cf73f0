// dist/ is checked in (the package installs without a build step), so it must be exactly what
// `tsc` makes of src/ now: compiled again into a temporary directory and compared file by file.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

import { packageDir } from "./helpers/server.mjs";

async function files(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(relative(dir, join(entry.parentPath ?? entry.path, entry.name)));
  }
  return out.sort();
}

test("dist/ is up to date with src/", async (t) => {
  const out = await mkdtemp(join(tmpdir(), "floodgate-ts-dist-"));
  t.after(() => rm(out, { recursive: true, force: true }));
  const tsc = join(packageDir, "node_modules", "typescript", "bin", "tsc");
  await promisify(execFile)(process.execPath, [tsc, "-p", join(packageDir, "tsconfig.json"), "--outDir", out], { cwd: packageDir });
  const dist = join(packageDir, "dist");
  const expected = await files(out);
  assert.deepEqual(await files(dist), expected, "dist/ has other files than a build makes: run `npm run build`");
  for (const file of expected) {
    const [built, checkedIn] = await Promise.all([readFile(join(out, file), "utf8"), readFile(join(dist, file), "utf8")]);
    assert.ok(built === checkedIn, `dist/${file} is stale: run \`npm run build\` and check dist/ in`);
  }
});
