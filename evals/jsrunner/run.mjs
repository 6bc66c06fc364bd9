// A small jest-compatible runner for the exercise specs, so they run on plain node without npm install.
// Supports describe/test/it (x- variants run too, as the benchmark runs every test), before/afterEach,
// and the expect matchers the specs use. Usage: node --experimental-default-type=module
//   --import ./register.mjs run.mjs path/to/x.spec.js   -> prints a JSON summary, exit 1 on failure.
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { inspect, isDeepStrictEqual } from 'node:util';

const specPath = path.resolve(process.argv[2]);
globalThis.__dirname = path.dirname(specPath);
globalThis.__filename = specPath;
globalThis.require = createRequire(specPath);

const newSuite = (name, parent) => ({ name, parent, items: [], before: [], after: [], beforeAll: [], afterAll: [] });
const root = newSuite('', null);
let current = root;

function describe(name, fn) {
  const suite = newSuite(name, current);
  current.items.push({ suite });
  const previous = current;
  current = suite;
  fn();
  current = previous;
}
function test(name, fn) {
  current.items.push({ test: { name, fn } });
}
Object.assign(globalThis, {
  describe, xdescribe: describe, test, it: test, xtest: test, xit: test,
  beforeEach: (fn) => current.before.push(fn), afterEach: (fn) => current.after.push(fn),
  beforeAll: (fn) => current.beforeAll.push(fn), afterAll: (fn) => current.afterAll.push(fn),
});
describe.skip = describe;
test.skip = test;
test.only = test;

function equals(a, b) {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  if (a instanceof RegExp || b instanceof RegExp) return String(a) === String(b);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (a instanceof Map || b instanceof Map) {
    if (!(a instanceof Map && b instanceof Map) || a.size !== b.size) return false;
    return [...a].every(([k, v]) => b.has(k) && equals(v, b.get(k)));
  }
  if (a instanceof Set || b instanceof Set) {
    if (!(a instanceof Set && b instanceof Set) || a.size !== b.size) return false;
    return [...a].every((v) => b.has(v) || [...b].some((w) => equals(v, w)));
  }
  // jest's toEqual: keys whose value is undefined do not count, object types are not compared.
  const keysA = Object.keys(a).filter((k) => a[k] !== undefined);
  const keysB = Object.keys(b).filter((k) => b[k] !== undefined);
  if (keysA.length !== keysB.length) return false;
  return keysA.every((k) => Object.prototype.hasOwnProperty.call(b, k) && equals(a[k], b[k]));
}

const show = (value) => inspect(value, { depth: 4, breakLength: Infinity });

function thrownMatches(thrown, expected) {
  if (expected === undefined) return true;
  const message = thrown && thrown.message !== undefined ? thrown.message : String(thrown);
  if (typeof expected === 'string') return message.includes(expected);
  if (expected instanceof RegExp) return expected.test(message);
  if (typeof expected === 'function') return thrown instanceof expected;
  return message === expected.message;
}

function matchers(actual, negate, settled) {
  const check = (pass, what) => {
    if (pass === negate) throw new Error(`expected ${show(actual)} ${negate ? 'not ' : ''}${what}`);
  };
  const toThrow = (expected) => {
    let threw = settled === 'rejected';
    let thrown = settled === 'rejected' ? actual : undefined;
    if (settled !== 'rejected') {
      try {
        actual();
      } catch (error) {
        threw = true;
        thrown = error;
      }
    }
    check(threw && thrownMatches(thrown, expected), `to throw ${show(expected)} (threw ${show(thrown)})`);
  };
  return {
    toBe: (e) => check(Object.is(actual, e), `to be ${show(e)}`),
    toEqual: (e) => check(equals(actual, e), `to equal ${show(e)}`),
    toStrictEqual: (e) => check(isDeepStrictEqual(actual, e), `to strictly equal ${show(e)}`),
    toBeCloseTo: (e, digits = 2) => check(Math.abs(e - actual) < 10 ** -digits / 2, `to be close to ${e}`),
    toBeUndefined: () => check(actual === undefined, 'to be undefined'),
    toBeDefined: () => check(actual !== undefined, 'to be defined'),
    toBeNull: () => check(actual === null, 'to be null'),
    toBeTruthy: () => check(Boolean(actual), 'to be truthy'),
    toBeFalsy: () => check(!actual, 'to be falsy'),
    toBeNaN: () => check(Number.isNaN(actual), 'to be NaN'),
    toBeInstanceOf: (cls) => check(actual instanceof cls, `to be an instance of ${cls && cls.name}`),
    toContain: (x) => check(actual.includes(x), `to contain ${show(x)}`),
    toHaveLength: (n) => check(actual.length === n, `to have length ${n}`),
    toMatch: (p) => check(typeof p === 'string' ? actual.includes(p) : p.test(actual), `to match ${p}`),
    toBeGreaterThan: (n) => check(actual > n, `to be > ${n}`),
    toBeGreaterThanOrEqual: (n) => check(actual >= n, `to be >= ${n}`),
    toBeLessThan: (n) => check(actual < n, `to be < ${n}`),
    toBeLessThanOrEqual: (n) => check(actual <= n, `to be <= ${n}`),
    toThrow,
    toThrowError: toThrow,
  };
}

function settledMatchers(promise, wanted) {
  const wrap = (negate) => new Proxy({}, {
    get: (_, name) => async (...args) => {
      let state;
      let value;
      try {
        value = await promise;
        state = 'resolved';
      } catch (error) {
        value = error;
        state = 'rejected';
      }
      if (state !== wanted) throw new Error(`expected the promise to be ${wanted}, it was ${state}: ${show(value)}`);
      return matchers(value, negate, state)[name](...args);
    },
  });
  const positive = wrap(false);
  positive.not = wrap(true);
  return positive;
}

globalThis.expect = (actual) => {
  const m = matchers(actual, false);
  m.not = matchers(actual, true);
  m.resolves = settledMatchers(actual, 'resolved');
  m.rejects = settledMatchers(actual, 'rejected');
  return m;
};

const results = { passed: 0, failed: 0, failures: [] };

async function call(fn) {
  const run = fn.length > 0 ? new Promise((resolve, reject) => fn((e) => (e ? reject(e) : resolve()))) : fn();
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out after 10 s')), 10000);
  });
  try {
    await Promise.race([run, limit]);
  } finally {
    clearTimeout(timer);
  }
}

function hooks(suite, kind) {
  const chain = [];
  for (let s = suite; s; s = s.parent) chain.unshift(s);
  return kind === 'before' ? chain.flatMap((s) => s.before) : chain.reverse().flatMap((s) => s.after);
}

async function runSuite(suite, names) {
  for (const fn of suite.beforeAll) await call(fn);
  for (const item of suite.items) {
    if (item.suite) {
      await runSuite(item.suite, [...names, item.suite.name]);
      continue;
    }
    try {
      for (const fn of hooks(suite, 'before')) await call(fn);
      await call(item.test.fn);
      for (const fn of hooks(suite, 'after')) await call(fn);
      results.passed += 1;
    } catch (error) {
      results.failed += 1;
      if (results.failures.length < 5) {
        results.failures.push(`${[...names, item.test.name].join(' > ')}: ${String(error && error.message || error)}`);
      }
    }
  }
  for (const fn of suite.afterAll) await call(fn);
}

try {
  await import(pathToFileURL(specPath).href);
  await runSuite(root, []);
} catch (error) {
  results.failed += 1;
  results.failures.push(`load: ${String(error && error.stack || error)}`.slice(0, 2000));
}
process.stdout.write(`${JSON.stringify(results)}\n`);
process.exit(results.failed || !results.passed ? 1 : 0);
