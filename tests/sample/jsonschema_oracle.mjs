// jsonschema_oracle.mjs - the independent oracle of test_jsonschema.py:
// ajv (JSON Schema 2020-12) with ajv-formats' full formats.
//
//   node tests/sample/jsonschema_oracle.mjs CASES.json
//
// CASES: [{"schema": S, "strings": [TEXT...]}, ...]. Prints one JSON line
// per case: {"ok": true, "valid": [true|false...]} (JSON.parse of the text,
// then validation; text that is not JSON is invalid) or {"ok": false,
// "error": "..."} when ajv cannot compile the schema.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "js", "package.json"));
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
for (const c of cases) {
  let validate;
  try {
    const ajv = new Ajv2020({ strict: false, allErrors: false });
    addFormats(ajv, { mode: "full" });
    validate = ajv.compile(c.schema);
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e.message || e) }));
    continue;
  }
  const valid = c.strings.map((t) => {
    let v;
    try {
      v = JSON.parse(t);
    } catch {
      return false;
    }
    return validate(v) === true;
  });
  console.log(JSON.stringify({ ok: true, valid }));
}
