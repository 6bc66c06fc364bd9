// Resolve `import x from './triangle'` (jest/babel style, no extension) to './triangle.js', and load a
// local .js file that is written as CommonJS (module.exports, no export statement) as CommonJS, which
// babel-jest would have bridged for the specs.
import { readFile } from 'node:fs/promises';

export async function resolve(specifier, context, nextResolve) {
  const relative = specifier.startsWith('./') || specifier.startsWith('../');
  if (relative && !/\.(c|m)?js$|\.json$/.test(specifier)) {
    try {
      return await nextResolve(`${specifier}.js`, context);
    } catch {
      // not a file with .js appended: let node report the original specifier
    }
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (url.startsWith('file:') && url.endsWith('.js') && !url.includes('/node_modules/')) {
    const source = await readFile(new URL(url), 'utf8');
    if (/\bmodule\.exports\b/.test(source) && !/^\s*export\s/m.test(source) && !/^\s*import\s/m.test(source)) {
      return { format: 'commonjs', shortCircuit: true, source: null };
    }
  }
  return nextLoad(url, context);
}
