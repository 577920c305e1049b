// Locates files that ship beside the code (descriptor set, market universes,
// static pages) whether it runs from source (tsx) or from dist/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The project root: the nearest directory above this module with a package.json. */
export function projectRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('project root not found (no package.json above the code)');
    dir = parent;
  }
  root = dir;
  return dir;
}

export function projectPath(...parts: string[]): string {
  return join(projectRoot(), ...parts);
}
