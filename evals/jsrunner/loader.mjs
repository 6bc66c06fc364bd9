// Resolve `import x from './triangle'` (jest/babel style, no extension) to './triangle.js'.
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
