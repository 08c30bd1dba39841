/** Top-level declarations of a cell survive into the next cell, and top-level await works. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createContext, runInContext } from 'node:vm';
import { hoistTopLevel } from '../../../components/kernel/hoist';

/** Runs cells one after another in one global scope, as the kernel worker does with importScripts. */
async function runCells(cells: string[]): Promise<string[]> {
  const logs: string[] = [];
  const ctx = createContext({ console: { log: (...a: unknown[]) => logs.push(a.join(' ')) } });
  runInContext('var self = globalThis;', ctx);
  for (const c of cells) {
    runInContext(hoistTopLevel(c).script, ctx);
    await runInContext('self.__cell', ctx);
  }
  return logs;
}

describe('hoisting top-level declarations', () => {
  it('shares consts, lets, functions and classes between cells', async () => {
    const logs = await runCells([
      'const x = 2;\nlet y = x * 3\nfunction sq(n) { return n * n }\nclass P { constructor() { this.v = 1 } }',
      'console.log(x + y + sq(3) + new P().v)',
    ]);
    assert.deepEqual(logs, ['18']);
  });

  it('a function can be called above its declaration, as in any script, and later cells see it', async () => {
    const logs = await runCells(['console.log(main());\nfunction main() { return 7 }', 'console.log(main() * 2)']);
    assert.deepEqual(logs, ['7', '14']);
  });

  it('allows top-level await and keeps its result', async () => {
    const logs = await runCells(['const r = await Promise.resolve(5);', 'console.log(r * 2)']);
    assert.deepEqual(logs, ['10']);
  });

  it('hoists names bound by object and array destructuring', async () => {
    const logs = await runCells(['const { a, b: c } = { a: 1, b: 2 };\nconst [p, , q] = [3, 0, 4];', 'console.log(a, c, p, q)']);
    assert.deepEqual(logs, ['1 2 3 4']);
  });

  it('leaves declarations inside blocks, functions, strings, comments and templates alone', () => {
    const src = [
      "const s = 'const hidden = 1';",
      '// const alsoHidden = 2',
      '/* let nope = 3 */',
      'function f() { const inner = 4; return inner }',
      'if (true) { let block = 5 }',
      'const t = `${ {k: 1}.k } const notThis = 6`;',
    ].join('\n');
    const r = hoistTopLevel(src);
    assert.deepEqual(r.names, ['s', 'f', 't']);
  });

  it('redeclaring a name in a later cell replaces it instead of failing', async () => {
    const logs = await runCells(['const n = 1', 'const n = 2', 'console.log(n)']);
    assert.deepEqual(logs, ['2']);
  });

  it('a cell without declarations still runs and can await', async () => {
    const logs = await runCells(['console.log(await Promise.resolve("ok"))']);
    assert.deepEqual(logs, ['ok']);
  });

  it('hoists names bound by nested patterns, defaults and rest elements', async () => {
    const logs = await runCells([
      "const { a: { b, c = { z: '}' } }, d = [1, 2], ...rest } = { a: { b: 1 }, e: 5 };\nconst [f, , [g] = [7], ...h] = [3, 0, undefined, 8, 9];",
      'console.log(b, c.z, d.length, rest.e, f, g, h.join("+"))',
    ]);
    assert.deepEqual(logs, ['1 } 2 5 3 7 8+9']);
  });

  it('reads regular expression literals as literals: quotes, brackets and slashes in them do not hide later declarations', async () => {
    const logs = await runCells([
      [
        `const clean = 'say "hi"'.replace(/"/g, '');`,
        "const parts = 'a{b(c[d'.split(/[{([]/);",
        "const url = 'http://x//y'.replace(/\\/\\//g, '/');",
        'const ratio = 6 / 3 / 2;',
        "const { pick = /}/.source, [`k`]: key = 'a' } = { k: 'b' };",
        'const n = (4) / 2, m = [8][0] / 4;',
        'if (true) /x/.test("x");',
        'const last = 1;',
      ].join('\n'),
      'console.log(clean, parts.length, url, ratio, pick, key, n, m, last)',
    ]);
    assert.deepEqual(logs, ['say hi 4 http:/x/y 1 } b 2 2 1']);
  });

  it("reads a slash after a block's closing brace as a regular expression, and after an object's as division", async () => {
    const logs = await runCells([
      [
        'let seen = 0;',
        'if (true) { seen++ }',
        "/{/.test('{') && seen++;",
        'for (const x of [1]) { seen += x }',
        '/[(]/.test("(") && seen++',
        'const tidy = () => { return 1 }',
        "/\\/\\/[{]/.test('//{') && seen++;",
        'const o = { a: 8 }.a / 2 / 2, p = ({ b: 6 }).b / 3;',
        'const last = 1;',
      ].join('\n'),
      'console.log(seen, o, p, last)',
    ]);
    assert.deepEqual(logs, ['5 2 2 1']);
  });

  it('reads a slash after a name, a property, a postfix ++ or a non-breaking space as division', async () => {
    const logs = await runCells([
      [
        'const π = 8;',
        "const half = π / 2 // it's half",
        'const t = { in: 6, new: 3 }, s = `${π / 2} / ${π}`;',
        'const r = t.in / 2, q = t.new / 3;',
        'let i = 4;',
        'const h = i++ / 2; const k = i-- / 5;',
        'const nb = 9\u00a0/ 3, quote = "x/y";',
        'const last = 1;',
      ].join('\n'),
      'console.log(π, half, s, r, q, h, k, nb, quote, last)',
    ]);
    assert.deepEqual(logs, ['8 4 4 / 8 3 1 2 1 3 x/y 1']);
  });

  it('keeps comments out of a destructuring statement: after it on its line, and inside its pattern', async () => {
    const logs = await runCells([
      ['const [a, b] = [1, 2] // a, b', 'const {', '  c, // the first', '  /* skipped */ d,', '} = { c: 3, d: 4 };'].join('\n'),
      'console.log(a, b, c, d)',
    ]);
    assert.deepEqual(logs, ['1 2 3 4']);
  });

  it('reads a colon in a default as part of the default, not as a key', async () => {
    const logs = await runCells(['const { a = 2 > 1 ? 3 : 4, b: { c } = { c: 5 } } = {};', 'console.log(a, c)']);
    assert.deepEqual(logs, ['3 5']);
  });

  it('ends a destructuring statement at a line that ends in a regular expression', async () => {
    const logs = await runCells(['let { source } = /ab/\nconsole.log(source)', 'console.log(source.length)']);
    assert.deepEqual(logs, ['ab', '2']);
  });

  it("keeps the cell's lines in order from firstLine, so an error's line is the cell's line", async () => {
    const cells = [
      // No declaration: no header line.
      'console.log(1);\nnull.x;',
      // Declarations of every kind, a multi-line template and a function declared below its use.
      'const a = 1;\nlet { b, c } = { b: 2, c: 3 };\nconst t = `one\ntwo`;\nf();\nfunction f() {\n  return a + b + c + t.length + null.y;\n}',
    ];
    const thrownAt = [2, 7];
    for (const [i, cell] of cells.entries()) {
      const { script, firstLine } = hoistTopLevel(cell);
      const ctx = createContext({ console: { log: () => {} } });
      runInContext('var self = globalThis;', ctx);
      runInContext(script, ctx, { filename: 'cell.js' });
      const err = await (runInContext('self.__cell', ctx) as Promise<unknown>).then(() => null, (e: unknown) => e);
      assert.ok(err instanceof Error || (typeof err === 'object' && err !== null && 'stack' in err), `cell ${i} threw`);
      const line = Number(/cell\.js:(\d+):\d+/.exec(String((err as { stack: unknown }).stack))?.[1]);
      assert.equal(line - firstLine + 1, thrownAt[i], `cell ${i}`);
    }
  });
});
