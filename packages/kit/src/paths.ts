// Locates files that ship beside the code (descriptor set, market universes,
// static pages) whether it runs from source (tsx) or from dist/.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let kitRoot: string | undefined;
let root: string | undefined;

/** Directories from this module up to the filesystem root, each holding a package.json. */
function* packageDirsAbove(): Generator<string> {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) yield dir;
    const parent = dirname(dir);
    if (parent === dir) return;
    dir = parent;
  }
}

/** A file inside the kit package (packages/kit): its descriptors/ and markets/ ship in it. */
export function kitPath(...parts: string[]): string {
  if (!kitRoot) {
    const first = packageDirsAbove().next();
    if (first.done) throw new Error('kit root not found (no package.json above the code)');
    kitRoot = first.value;
  }
  return join(kitRoot, ...parts);
}

/** The project root: the nearest directory above the kit whose package.json declares the workspaces. */
export function projectRoot(): string {
  if (root) return root;
  for (const dir of packageDirsAbove()) {
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { workspaces?: unknown };
    if (manifest.workspaces !== undefined) return (root = dir);
  }
  throw new Error('project root not found (no package.json with workspaces above the code)');
}

export function projectPath(...parts: string[]): string {
  return join(projectRoot(), ...parts);
}
