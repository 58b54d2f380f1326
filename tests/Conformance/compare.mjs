// Reads the conformance suite's results for every mode and prints the scenario × mode table.
// Exit status 1 when a mode's scenario outcome differs from the direct run's, except where the policy
// acts (a "+deny" mode's denied scenario must fail, and its checks must carry the policy's reason).
//
//   node compare.mjs --kind server|client --results DIR --modes direct,http,stdio,... \
//        [--deny-scenario NAME --deny-reason TEXT] [--known FILE] [--markdown FILE]
//
// --known FILE lists differences that are known gaps, one per line: "<kind> <mode> <scenario> <why>" (# comments).
// They are shown as "known" and do not fail the run; an entry that no longer differs is reported as stale.
//
// DIR/<mode>/ holds the suite's output (-o): one directory per scenario run, named
// "[server-]<scenario>-<timestamp>", with checks.json inside. A scenario passes when none of its
// checks is a FAILURE (WARNING and INFO are reported, not gated: they are SHOULDs and notes).
import { readdirSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) =>
  a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs, []));
const kind = args.kind ?? 'server';
const modes = args.modes.split(',');
const baseline = modes[0];

function load(mode) {
  const dir = join(args.results, mode);
  const scenarios = new Map();
  if (!existsSync(dir)) return scenarios;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const file = join(dir, entry.name, 'checks.json');
    if (!existsSync(file)) continue;
    const name = entry.name.replace(/^server-/, '').replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, '');
    const checks = JSON.parse(readFileSync(file, 'utf8'));
    const count = status => checks.filter(c => c.status === status).length;
    scenarios.set(name, {
      pass: count('FAILURE') === 0,
      success: count('SUCCESS'), failure: count('FAILURE'), warning: count('WARNING'),
      text: JSON.stringify(checks),
      failures: checks.filter(c => c.status === 'FAILURE').map(c => `${c.id}: ${c.errorMessage ?? ''}`),
    });
  }
  return scenarios;
}

const known = new Map();
if (args.known && existsSync(args.known)) {
  for (const raw of readFileSync(args.known, 'utf8').split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [lineKind, mode, scenario, ...why] = line.split(/\s+/);
    if (lineKind === kind) known.set(`${mode} ${scenario}`, why.join(' '));
  }
}

const results = new Map(modes.map(m => [m, load(m)]));
const names = [...new Set(modes.flatMap(m => [...results.get(m).keys()]))];
const order = [...results.get(baseline).keys()];
names.sort((a, b) => (order.indexOf(a) + 1 || 1e9) - (order.indexOf(b) + 1 || 1e9));

const cell = r => r === undefined ? 'missing'
  : `${r.pass ? 'pass' : 'FAIL'} ${r.success}✓${r.failure ? ` ${r.failure}✗` : ''}${r.warning ? ` ${r.warning}⚠` : ''}`;

const problems = [];
const knownSeen = [];
const differ = (mode, name, text) => {
  const key = `${mode} ${name}`;
  if (known.has(key)) { knownSeen.push(`${mode}: ${name}: ${text} — known: ${known.get(key)}`); known.delete(key); return ' (known)'; }
  problems.push(`${mode}: ${name} ${text}`);
  return ' ≠';
};
const notes = [];
const rows = [];
for (const name of names) {
  const direct = results.get(baseline).get(name);
  const row = [name, cell(direct)];
  for (const mode of modes.slice(1)) {
    const r = results.get(mode).get(name);
    let mark = '';
    const denied = mode.includes('deny') && name === args['deny-scenario'];
    if (r === undefined) {
      mark = differ(mode, name, 'did not run');
    } else if (denied) {
      if (r.pass) mark = differ(mode, name, 'passed, but the policy denies its tool');
      else if (!r.text.includes(args['deny-reason'])) mark = differ(mode, name, `failed without the policy's reason (${r.failures.join('; ')})`);
      else mark = ' (policy)';
    } else if (direct === undefined || r.pass !== direct.pass) {
      mark = differ(mode, name, `${r.pass ? 'passes' : 'fails'} but ${direct === undefined ? 'did not run' : direct.pass ? 'passes' : 'fails'} directly${r.failures.length ? ` (${r.failures.join('; ')})` : ''}`);
    } else if (r.success !== direct.success || r.warning !== direct.warning) {
      notes.push(`${mode}: ${name}: ${cell(r)} vs ${cell(direct)} directly (same outcome; checks differ)`);
      mark = ' *';
    }
    row.push(cell(r) + mark);
  }
  rows.push(row);
}

const header = [kind === 'server' ? 'server scenario' : 'client scenario', ...modes];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => r[i].length)));
const line = r => r.map((c, i) => c.padEnd(widths[i])).join('  ');
console.log(line(header));
console.log(widths.map(w => '-'.repeat(w)).join('  '));
rows.forEach(r => console.log(line(r)));
console.log('\n(pass/FAIL: no check failed / some did; n✓ n✗ n⚠: SUCCESS, FAILURE, WARNING checks; ≠ differs from ' +
  `${baseline}; (policy) failed as the policy requires; (known) a listed known gap; * same outcome, different checks)`);
for (const n of notes) console.log(`note: ${n}`);
for (const k of knownSeen) console.log(`KNOWN GAP: ${k}`);
for (const [key, why] of known) {
  const [mode] = key.split(' ');
  if (modes.includes(mode)) console.log(`note: stale known difference (it no longer differs; remove it from ${args.known}): ${key} — ${why}`);
}
for (const p of problems) console.log(`DIFFERENCE: ${p}`);

if (args.markdown) {
  const md = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map(r => `| ${r.join(' | ')} |`)].join('\n');
  writeFileSync(args.markdown, md + '\n');
}

process.exit(problems.length === 0 ? 0 : 1);
