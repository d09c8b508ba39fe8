#!/usr/bin/env node
// Lists the spec rules the code implements and the ones tests exercise, from `// spec: ...` tags.
// Source tags sit above the check that implements a rule; test tags sit on the test that exercises it.
// Usage: node scripts/spec-coverage.mjs [--json]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.ts')) files.push(p);
  }
})(join(root, 'src'));

const rules = { implemented: [], tested: [] };
for (const f of files.sort()) {
  const kind = /\.(case\.|prop\.)?test\.ts$/.test(f) ? 'tested' : 'implemented';
  readFileSync(f, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const m = /\/\/ spec: (.*)$/.exec(line);
      if (m) rules[kind].push({ rule: m[1].trim(), where: `${relative(root, f)}:${i + 1}` });
    });
}

if (process.argv.includes('--json')) {
  console.log(JSON.stringify(rules, null, 2));
} else {
  for (const kind of ['implemented', 'tested']) {
    console.log(`\n${kind === 'implemented' ? 'Rules implemented (tag above the check)' : 'Rules with tests'}: ${rules[kind].length}`);
    for (const r of rules[kind]) console.log(`  ${r.where.padEnd(58)} ${r.rule}`);
  }
}
