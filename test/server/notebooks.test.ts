/** The notebook file store: CRUD, listing, conflicts, content limits, path confinement and crash safety. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isInside } from '../../server/notebooks/paths.ts';
import { MAX_NOTEBOOK_BYTES, NotebookError, NotebookErrorCode, NotebookStore, parseNotebookPath } from '../../server/notebooks/store.ts';
import { crashNotebook } from './fixtures/save-loop.ts';

const SAVE_LOOP = fileURLToPath(new URL('./fixtures/save-loop.ts', import.meta.url));

const nb = (title: string) => JSON.stringify({ format: 'moenb', title, cells: [{ kind: 'markdown', source: `# ${title}` }] });

const temps: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'moe-lab-notebooks-'));
  temps.push(dir);
  return dir;
}
after(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

async function freshStore(): Promise<{ store: NotebookStore; root: string; parent: string }> {
  const parent = tempDir();
  const store = await NotebookStore.open(join(parent, 'nb'));
  return { store, root: store.root, parent };
}

async function rejectsWithCode(p: Promise<unknown> | (() => unknown), code: string, label = ''): Promise<void> {
  await assert.rejects(
    async () => (typeof p === 'function' ? p() : p),
    (e: unknown) => {
      assert.ok(e instanceof NotebookError, `${label}: expected NotebookError, got ${String(e)}`);
      assert.equal(e.code, code, `${label}: ${e.message}`);
      return true;
    },
    `${label}: expected ${code}`,
  );
}

/** Every file and folder under `dir` (except `skip`) with a digest of its bytes and its mtime. */
function snapshot(dir: string, skip: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const full = join(d, name);
      if (full === skip) continue;
      const st = lstatSync(full);
      if (st.isDirectory()) {
        out.set(full, 'dir');
        walk(full);
      } else if (st.isFile()) {
        out.set(full, `${createHash('sha256').update(readFileSync(full)).digest('hex')}@${st.mtimeMs}`);
      } else {
        out.set(full, `other@${st.mtimeMs}`);
      }
    }
  };
  walk(dir);
  return out;
}

describe('notebook store basics', () => {
  it('round-trips create, read, save, rename, list and delete', async () => {
    const { store, root } = await freshStore();
    const created = await store.create('lessons/intro.moenb', nb('intro'));
    assert.equal(created.path, 'lessons/intro.moenb');
    assert.equal(created.name, 'intro.moenb');
    assert.equal(created.size, Buffer.byteLength(nb('intro')));
    assert.ok(!Number.isNaN(Date.parse(created.modified)));

    const read = await store.read('lessons/intro.moenb');
    assert.equal(read.content, nb('intro'));
    assert.deepEqual(read.entry, created);

    const saved = await store.save('lessons/intro.moenb', nb('intro, revised'), { expectedModified: read.entry.modified });
    assert.equal((await store.read('lessons/intro.moenb')).content, nb('intro, revised'));
    assert.equal(saved.size, Buffer.byteLength(nb('intro, revised')));

    const moved = await store.rename('lessons/intro.moenb', 'archive/2024/intro.moenb');
    assert.equal(moved.path, 'archive/2024/intro.moenb');
    assert.equal((await store.read('archive/2024/intro.moenb')).content, nb('intro, revised'));
    await rejectsWithCode(store.read('lessons/intro.moenb'), NotebookErrorCode.NOT_FOUND);
    assert.deepEqual((await store.list()).map((e) => e.path), ['archive/2024/intro.moenb']);

    await store.delete('archive/2024/intro.moenb');
    assert.deepEqual(await store.list(), []);
    assert.equal(existsSync(join(root, 'archive', '2024', 'intro.moenb')), false);
    await rejectsWithCode(store.read('archive/2024/intro.moenb'), NotebookErrorCode.NOT_FOUND);
  });

  it('reports missing notebooks as NOT_FOUND for read, delete and rename', async () => {
    const { store } = await freshStore();
    await rejectsWithCode(store.read('missing.moenb'), NotebookErrorCode.NOT_FOUND, 'read');
    await rejectsWithCode(store.delete('missing.moenb'), NotebookErrorCode.NOT_FOUND, 'delete');
    await rejectsWithCode(store.rename('missing.moenb', 'other.moenb'), NotebookErrorCode.NOT_FOUND, 'rename');
    await rejectsWithCode(store.read('no/such/folder.moenb'), NotebookErrorCode.NOT_FOUND, 'read in missing folder');
  });

  it('gives every error code its HTTP status', () => {
    const status = Object.fromEntries(Object.values(NotebookErrorCode).map((c) => [c, new NotebookError(c, 'x').status]));
    assert.deepEqual(status, {
      NOTEBOOK_NOT_FOUND: 404,
      NOTEBOOK_EXISTS: 409,
      NOTEBOOK_BAD_PATH: 400,
      NOTEBOOK_TOO_LARGE: 413,
      NOTEBOOK_BAD_CONTENT: 400,
      NOTEBOOK_CONFLICT: 409,
    });
  });

  it('opens a missing root by creating it, and keeps its real path', async () => {
    const parent = tempDir();
    mkdirSync(join(parent, 'real'));
    symlinkSync(join(parent, 'real'), join(parent, 'alias'));
    const store = await NotebookStore.open(join(parent, 'alias', 'deep', 'nb'));
    assert.equal(store.root, join(parent, 'real', 'deep', 'nb'));
    assert.ok(statSync(store.root).isDirectory());
  });

  it('lists recursively, sorted by path, hiding hidden files, temp files and non-notebooks', async () => {
    const { store, root } = await freshStore();
    await store.create('b.moenb', nb('b'));
    await store.create('a/z.moenb', nb('z'));
    await store.create('a/b/c.moenb', nb('c'));
    await store.create('A.moenb', nb('A'));
    writeFileSync(join(root, '.hidden.moenb'), nb('hidden'));
    mkdirSync(join(root, '.git'));
    writeFileSync(join(root, '.git', 'config.moenb'), nb('git'));
    writeFileSync(join(root, 'a', '.z.moenb.tmp-123-0123456789abcdef'), nb('temp'));
    writeFileSync(join(root, 'notes.txt'), 'text');
    writeFileSync(join(root, 'x.moenb.json'), nb('json'));
    mkdirSync(join(root, 'folder.moenb'));
    const list = await store.list();
    assert.deepEqual(list.map((e) => e.path), ['A.moenb', 'a/b/c.moenb', 'a/z.moenb', 'b.moenb']);
    const c = list.find((e) => e.path === 'a/b/c.moenb');
    assert.equal(c?.name, 'c.moenb');
    assert.equal(c?.size, Buffer.byteLength(nb('c')));
  });

  it('create refuses a path that already exists and leaves the file unchanged', async () => {
    const { store } = await freshStore();
    await store.create('x.moenb', nb('first'));
    await rejectsWithCode(store.create('x.moenb', nb('second')), NotebookErrorCode.EXISTS);
    assert.equal((await store.read('x.moenb')).content, nb('first'));
  });

  it('create refuses a path whose parent is a notebook file', async () => {
    const { store } = await freshStore();
    await store.create('x.moenb', nb('x'));
    await rejectsWithCode(store.create('x.moenb/y.moenb', nb('y')), NotebookErrorCode.BAD_PATH);
  });

  it('rename refuses an existing target and keeps both notebooks', async () => {
    const { store } = await freshStore();
    await store.create('from.moenb', nb('from'));
    await store.create('to.moenb', nb('to'));
    await rejectsWithCode(store.rename('from.moenb', 'to.moenb'), NotebookErrorCode.EXISTS);
    assert.equal((await store.read('from.moenb')).content, nb('from'));
    assert.equal((await store.read('to.moenb')).content, nb('to'));
  });

  it('save with a stale expectedModified fails with CONFLICT and keeps the newer content', async () => {
    const { store } = await freshStore();
    const first = await store.create('x.moenb', nb('v1'));
    const second = await store.save('x.moenb', nb('v2'), { expectedModified: first.modified });
    assert.notEqual(second.modified, first.modified);
    await rejectsWithCode(store.save('x.moenb', nb('stale edit'), { expectedModified: first.modified }), NotebookErrorCode.CONFLICT);
    assert.equal((await store.read('x.moenb')).content, nb('v2'));
    // The current stamp still works.
    await store.save('x.moenb', nb('v3'), { expectedModified: second.modified });
  });

  it('stamps every save later than the one before, even when the clock lags the file', async () => {
    const { store, root } = await freshStore();
    const seen = new Set([(await store.create('x.moenb', nb('0'))).modified]);
    for (let i = 1; i <= 5; i++) seen.add((await store.save('x.moenb', nb(String(i)))).modified);
    assert.equal(seen.size, 6);
    // A file stamped ahead of the clock (copied in, or written by a skewed host): a save stamped with
    // "now" could repeat an earlier stamp and let a stale expectedModified through.
    const ahead = new Date(Date.now() + 60_000);
    utimesSync(join(root, 'x.moenb'), ahead, ahead);
    const before = (await store.read('x.moenb')).entry.modified;
    const after = await store.save('x.moenb', nb('later'));
    assert.ok(Date.parse(after.modified) > Date.parse(before), `${after.modified} should be after ${before}`);
  });

  it('lets only one of two concurrent saves based on the same version through', async () => {
    const { store } = await freshStore();
    const base = await store.create('x.moenb', nb('base'));
    const results = await Promise.allSettled([
      store.save('x.moenb', nb('left'), { expectedModified: base.modified }),
      store.save('x.moenb', nb('right'), { expectedModified: base.modified }),
    ]);
    assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.equal((rejected.reason as NotebookError).code, NotebookErrorCode.CONFLICT);
  });

  it('save with expectedModified fails with CONFLICT when the notebook was deleted meanwhile', async () => {
    const { store } = await freshStore();
    const entry = await store.create('x.moenb', nb('x'));
    await store.delete('x.moenb');
    await rejectsWithCode(store.save('x.moenb', nb('x'), { expectedModified: entry.modified }), NotebookErrorCode.CONFLICT);
    assert.deepEqual(await store.list(), []);
  });

  it('refuses invalid JSON with BAD_CONTENT and writes nothing', async () => {
    const { store } = await freshStore();
    await rejectsWithCode(store.create('x.moenb', '{"cells": ['), NotebookErrorCode.BAD_CONTENT, 'create');
    assert.deepEqual(await store.list(), []);
    await store.create('y.moenb', nb('y'));
    for (const bad of ['', 'not json', '{"a":1}{', '\ud800"']) {
      await rejectsWithCode(store.save('y.moenb', bad), NotebookErrorCode.BAD_CONTENT, JSON.stringify(bad));
    }
    assert.equal((await store.read('y.moenb')).content, nb('y'));
  });

  it('refuses content past MAX_NOTEBOOK_BYTES with TOO_LARGE, counting UTF-8 bytes', async () => {
    const { store } = await freshStore();
    const exact = `"${'a'.repeat(MAX_NOTEBOOK_BYTES - 2)}"`;
    assert.equal(Buffer.byteLength(exact), MAX_NOTEBOOK_BYTES);
    await store.create('exact.moenb', exact);
    await rejectsWithCode(store.create('over.moenb', `"${'a'.repeat(MAX_NOTEBOOK_BYTES - 1)}"`), NotebookErrorCode.TOO_LARGE, 'ascii');
    // Fewer UTF-16 code units than the limit, but more bytes.
    const wide = `"${'é'.repeat(MAX_NOTEBOOK_BYTES / 2)}"`;
    assert.ok(wide.length < MAX_NOTEBOOK_BYTES);
    await rejectsWithCode(store.save('exact.moenb', wide), NotebookErrorCode.TOO_LARGE, 'utf-8');
    assert.equal((await store.read('exact.moenb')).entry.size, MAX_NOTEBOOK_BYTES);
    assert.deepEqual((await store.list()).map((e) => e.path), ['exact.moenb']);
  });

  it('refuses to serve a file on disk past MAX_NOTEBOOK_BYTES', async () => {
    const { store, root } = await freshStore();
    writeFileSync(join(root, 'huge.moenb'), Buffer.alloc(MAX_NOTEBOOK_BYTES + 1, 0x20));
    await rejectsWithCode(store.read('huge.moenb'), NotebookErrorCode.TOO_LARGE);
  });

  it('removes temp files older than an hour on open and keeps recent ones', async () => {
    const { root } = await freshStore();
    mkdirSync(join(root, 'sub'));
    const stale = join(root, 'sub', '.x.moenb.tmp-42-0123456789abcdef');
    const fresh = join(root, 'sub', '.y.moenb.tmp-42-fedcba9876543210');
    const hiddenLookalike = join(root, '.hidden.moenb');
    for (const f of [stale, fresh, hiddenLookalike]) writeFileSync(f, '{}');
    const old = new Date(Date.now() - 2 * 60 * 60 * 1000);
    utimesSync(stale, old, old);
    utimesSync(hiddenLookalike, old, old);
    await NotebookStore.open(root);
    assert.equal(existsSync(stale), false);
    assert.equal(existsSync(fresh), true);
    assert.equal(existsSync(hiddenLookalike), true);
  });

  it('leaves no temp files behind after successful writes', async () => {
    const { store, root } = await freshStore();
    await store.create('d/x.moenb', nb('1'));
    await store.save('d/x.moenb', nb('2'));
    await store.save('d/new.moenb', nb('3'));
    assert.deepEqual(readdirSync(join(root, 'd')).sort(), ['new.moenb', 'x.moenb']);
  });
});

describe('notebook path rules', () => {
  it('accepts ordinary relative paths and decodes percent-escapes once', () => {
    assert.deepEqual(parseNotebookPath('lessons/intro.moenb'), { rel: 'lessons/intro.moenb', segments: ['lessons', 'intro.moenb'] });
    assert.equal(parseNotebookPath('my%20notes.moenb').rel, 'my notes.moenb');
    assert.equal(parseNotebookPath('caf%C3%A9.moenb').rel, 'café.moenb');
    assert.equal(parseNotebookPath('lessons%2Fintro.moenb').rel, 'lessons/intro.moenb');
  });

  it('compares containment against root plus separator, not a string prefix', () => {
    assert.equal(isInside('/x/nb', '/x/nb-evil/a.moenb', false), false);
    assert.equal(isInside('/x/nb', '/x/nb/a.moenb', false), true);
    assert.equal(isInside('/x/nb', '/x/nb', false), false);
    assert.equal(isInside('/x/nb', '/x/nb', true), true);
  });

  describe('attacks are refused with BAD_PATH, touching and reading nothing outside the root', () => {
    // Created now, not in a hook, because the absolute-path attacks below must name it.
    const parent = realpathSync(tempDir());
    const root = join(parent, 'nb');
    let store: NotebookStore;
    let outsideBefore: Map<string, string>;
    const SECRET = nb('outside secret');

    before(async () => {
      mkdirSync(join(parent, 'nb-evil'));
      writeFileSync(join(parent, 'nb-evil', 'a.moenb'), SECRET);
      writeFileSync(join(parent, 'x.moenb'), SECRET);
      writeFileSync(join(parent, 'x.moenb.txt'), SECRET);
      store = await NotebookStore.open(root);
      assert.equal(store.root, root);
      // Targets that exist inside the root, so a missing check could not hide behind NOT_FOUND.
      await store.create('ok.moenb', nb('ok'));
      await store.create('a/x.moenb', nb('a/x'));
      writeFileSync(join(root, '.hidden.moenb'), nb('hidden'));
      mkdirSync(join(root, '.git'));
      writeFileSync(join(root, '.git', 'config.moenb'), nb('git'));
      writeFileSync(join(root, 'notes.txt'), nb('txt'));
      writeFileSync(join(root, 'x.moenb.json'), nb('json'));
      outsideBefore = snapshot(parent, root);
    });

    const attacks: [string, string][] = [
      ['dot-dot', '../x.moenb'],
      ['dot-dot after a folder', 'a/../../x.moenb'],
      ['encoded dot-dot', '%2e%2e/x.moenb'],
      ['encoded dot-dot and slash', '%2e%2e%2fx.moenb'],
      ['dot-dot with encoded slash', '..%2fx.moenb'],
      ['upper-case escapes', '%2E%2E%2Fx.moenb'],
      ['double encoding', '%252e%252e/x.moenb'],
      ['double-encoded slash', '..%252fx.moenb'],
      ['overlong UTF-8 dots', '%c0%ae%c0%ae/x.moenb'],
      ['malformed escape', '%zz.moenb'],
      ['absolute', '/etc/passwd'],
      ['absolute notebook', '/etc/passwd.moenb'],
      ['encoded absolute', '%2fetc%2fpasswd.moenb'],
      ['absolute into the root', join(root, 'ok.moenb')],
      ['drive letter', 'C:/x.moenb'],
      ['backslashes', 'a\\..\\x.moenb'],
      ['encoded backslashes', '..%5cx.moenb'],
      ['encoded NUL', 'x.moenb%00.txt'],
      ['raw NUL', 'x\u0000.moenb'],
      ['hidden file', '.hidden.moenb'],
      ['hidden folder', '.git/config.moenb'],
      ['dot segment', './ok.moenb'],
      ['not a notebook', 'notes.txt'],
      ['notebook-looking extension', 'x.moenb.json'],
      ['extension only', '.moenb'],
      ['wrong case extension', 'x.MOENB'],
      ['empty', ''],
      ['trailing slash', 'a/'],
      ['empty segment', 'a//x.moenb'],
      ['control character', 'a\nb.moenb'],
      ['too long', `${'a'.repeat(1100)}.moenb`],
      ['too many segments', `${'d/'.repeat(40)}x.moenb`],
      ['sibling folder sharing the prefix', '../nb-evil/a.moenb'],
      ['sibling folder, absolute', join(parent, 'nb-evil', 'a.moenb')],
    ];

    for (const [label, p] of attacks) {
      it(`refuses ${label}: ${JSON.stringify(p.length > 60 ? `${p.slice(0, 57)}...` : p)}`, async () => {
        const valid = nb('attacker');
        await rejectsWithCode(store.read(p), NotebookErrorCode.BAD_PATH, `${label} read`);
        await rejectsWithCode(store.create(p, valid), NotebookErrorCode.BAD_PATH, `${label} create`);
        await rejectsWithCode(store.save(p, valid), NotebookErrorCode.BAD_PATH, `${label} save`);
        await rejectsWithCode(store.save(p, valid, { expectedModified: new Date().toISOString() }), NotebookErrorCode.BAD_PATH, `${label} save expected`);
        await rejectsWithCode(store.rename(p, 'moved.moenb'), NotebookErrorCode.BAD_PATH, `${label} rename from`);
        await rejectsWithCode(store.rename('ok.moenb', p), NotebookErrorCode.BAD_PATH, `${label} rename to`);
        await rejectsWithCode(store.delete(p), NotebookErrorCode.BAD_PATH, `${label} delete`);
        assert.deepEqual(snapshot(parent, root), outsideBefore, `${label}: something outside the root changed`);
        assert.equal((await store.read('ok.moenb')).content, nb('ok'));
        assert.equal(readFileSync(join(root, '.hidden.moenb'), 'utf8'), nb('hidden'));
        assert.equal(readFileSync(join(root, '.git', 'config.moenb'), 'utf8'), nb('git'));
        assert.equal(existsSync(join(root, 'moved.moenb')), false);
      });
    }
  });

  describe('symlinks', () => {
    it('refuses a symlinked file that points outside: no read, no write, no delete, not listed', async () => {
      const { store, root, parent } = await freshStore();
      const outside = join(parent, 'secret.moenb');
      writeFileSync(outside, nb('secret'));
      symlinkSync(outside, join(root, 'link.moenb'));
      await store.create('ok.moenb', nb('ok'));
      const before = snapshot(parent, root);
      await rejectsWithCode(store.read('link.moenb'), NotebookErrorCode.BAD_PATH, 'read');
      await rejectsWithCode(store.save('link.moenb', nb('overwrite')), NotebookErrorCode.BAD_PATH, 'save');
      await rejectsWithCode(store.create('link.moenb', nb('overwrite')), NotebookErrorCode.BAD_PATH, 'create');
      await rejectsWithCode(store.delete('link.moenb'), NotebookErrorCode.BAD_PATH, 'delete');
      await rejectsWithCode(store.rename('link.moenb', 'stolen.moenb'), NotebookErrorCode.BAD_PATH, 'rename from');
      await rejectsWithCode(store.rename('ok.moenb', 'link.moenb'), NotebookErrorCode.BAD_PATH, 'rename to');
      assert.equal(readFileSync(outside, 'utf8'), nb('secret'));
      assert.deepEqual(snapshot(parent, root), before);
      assert.ok(lstatSync(join(root, 'link.moenb')).isSymbolicLink());
      assert.deepEqual((await store.list()).map((e) => e.path), ['ok.moenb']);
    });

    it('refuses a symlinked folder that points outside: nothing created, read or listed through it', async () => {
      const { store, root, parent } = await freshStore();
      const outside = join(parent, 'outside');
      mkdirSync(outside);
      writeFileSync(join(outside, 'secret.moenb'), nb('secret'));
      symlinkSync(outside, join(root, 'shared'));
      const before = snapshot(parent, root);
      await rejectsWithCode(store.create('shared/new.moenb', nb('new')), NotebookErrorCode.BAD_PATH, 'create');
      await rejectsWithCode(store.create('shared/deeper/new.moenb', nb('new')), NotebookErrorCode.BAD_PATH, 'create nested');
      await rejectsWithCode(store.save('shared/secret.moenb', nb('overwrite')), NotebookErrorCode.BAD_PATH, 'save');
      await rejectsWithCode(store.read('shared/secret.moenb'), NotebookErrorCode.BAD_PATH, 'read');
      await rejectsWithCode(store.delete('shared/secret.moenb'), NotebookErrorCode.BAD_PATH, 'delete');
      assert.deepEqual(await store.list(), []);
      assert.deepEqual(snapshot(parent, root), before);
      assert.deepEqual(readdirSync(outside), ['secret.moenb']);
    });

    it('refuses a symlinked folder into a sibling that shares the root prefix', async () => {
      const { store, root, parent } = await freshStore();
      mkdirSync(join(parent, 'nb-evil'));
      writeFileSync(join(parent, 'nb-evil', 'a.moenb'), nb('evil'));
      symlinkSync(join(parent, 'nb-evil'), join(root, 'ev'));
      await rejectsWithCode(store.read('ev/a.moenb'), NotebookErrorCode.BAD_PATH, 'read');
      await rejectsWithCode(store.create('ev/b.moenb', nb('b')), NotebookErrorCode.BAD_PATH, 'create');
      assert.deepEqual(readdirSync(join(parent, 'nb-evil')), ['a.moenb']);
      assert.deepEqual(await store.list(), []);
    });

    it('refuses a dangling symlink, which a write would otherwise create outside', async () => {
      const { store, root, parent } = await freshStore();
      const ghost = join(parent, 'ghost.moenb');
      symlinkSync(ghost, join(root, 'dangling.moenb'));
      await rejectsWithCode(store.create('dangling.moenb', nb('x')), NotebookErrorCode.BAD_PATH, 'create');
      await rejectsWithCode(store.save('dangling.moenb', nb('x')), NotebookErrorCode.BAD_PATH, 'save');
      assert.equal(existsSync(ghost), false);
    });

    it('refuses a symlink into a hidden folder inside the root', async () => {
      const { store, root } = await freshStore();
      mkdirSync(join(root, '.private'));
      writeFileSync(join(root, '.private', 'p.moenb'), nb('private'));
      symlinkSync(join(root, '.private'), join(root, 'open'));
      await rejectsWithCode(store.read('open/p.moenb'), NotebookErrorCode.BAD_PATH);
      assert.deepEqual(await store.list(), []);
    });

    it('follows symlinks that stay inside the root, writing through to the target', async () => {
      const { store, root } = await freshStore();
      await store.create('real/target.moenb', nb('v1'));
      symlinkSync(join(root, 'real', 'target.moenb'), join(root, 'alias.moenb'));
      symlinkSync(join(root, 'real'), join(root, 'folder'));
      assert.equal((await store.read('alias.moenb')).content, nb('v1'));
      await store.save('alias.moenb', nb('v2'));
      assert.ok(lstatSync(join(root, 'alias.moenb')).isSymbolicLink());
      assert.equal(readFileSync(join(root, 'real', 'target.moenb'), 'utf8'), nb('v2'));
      assert.equal((await store.read('folder/target.moenb')).content, nb('v2'));
      assert.deepEqual((await store.list()).map((e) => e.path), ['alias.moenb', 'folder/target.moenb', 'real/target.moenb']);
    });

    it('lists through a symlink cycle without looping', async () => {
      const { store, root } = await freshStore();
      await store.create('sub/x.moenb', nb('x'));
      symlinkSync(root, join(root, 'sub', 'up'));
      assert.deepEqual((await store.list()).map((e) => e.path), ['sub/x.moenb']);
    });
  });
});

describe('crash safety of save', () => {
  const ROUNDS = 8;

  /** Starts the save loop, kills it with SIGKILL `delayMs` after it begins saving; resolves with completed saves. */
  function killMidSave(root: string, rel: string, delayMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', SAVE_LOOP, root, rel], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      let timer: NodeJS.Timeout | undefined;
      const watchdog = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (!timer && out.includes('saving\n')) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
      });
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('error', reject);
      child.on('exit', (code, signal) => {
        clearTimeout(watchdog);
        if (timer) clearTimeout(timer);
        if (signal !== 'SIGKILL' || !timer) reject(new Error(`save loop ended with ${code ?? signal} before being killed: ${err}`));
        else resolve((out.match(/^saved /gm) ?? []).length);
      });
    });
  }

  it('leaves exactly version A or version B after SIGKILL at random moments, never a torn file', { timeout: 60_000 }, async (t) => {
    const { store, root } = await freshStore();
    const A = crashNotebook('A');
    const B = crashNotebook('B');
    assert.notEqual(A, B);
    assert.ok(Buffer.byteLength(A) > 4 * 1024 * 1024);
    const rel = 'crash/big.moenb';
    await store.create(rel, A);
    let completed = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const delay = 20 + Math.floor(Math.random() * 181);
      const saves = await killMidSave(root, rel, delay);
      completed += saves;
      const text = readFileSync(join(root, 'crash', 'big.moenb'), 'utf8');
      const which = text === A ? 'A' : text === B ? 'B' : null;
      assert.ok(which, `round ${round} (killed ${delay} ms in, after ${saves} saves): file is neither A nor B (${text.length} chars)`);
      assert.doesNotThrow(() => JSON.parse(text));
      const debris = readdirSync(join(root, 'crash')).filter((n) => n !== 'big.moenb');
      t.diagnostic(`round ${round}: killed ${delay} ms in after ${saves} saves; file is ${which}; ${debris.length} temp file(s) left`);
      // Whatever a killed writer left behind stays invisible.
      assert.deepEqual((await store.list()).map((e) => e.path), [rel]);
    }
    assert.ok(completed > 0, 'the child never completed a save, so the kills tested nothing');
  });
});
