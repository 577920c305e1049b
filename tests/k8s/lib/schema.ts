// Schema validation of rendered objects against the Kubernetes API schema, in two
// layers:
//  1. kubernetes-models' JSON-schema validators (types, required fields, enums).
//     The Kubernetes OpenAPI schema does not forbid unknown fields, so these accept
//     a misspelt field (`readinesProbe:`) silently - which the API server would
//     drop (or reject, with strict field validation).
//  2. An unknown-field check: each object is type-checked by the TypeScript compiler
//     against kubernetes-models' interfaces. Object literals get excess-property
//     checks, so an unknown field at any depth is an error, as are wrong types.
import ts from 'typescript';
import { join } from 'node:path';
import { REPO_ROOT, type K8sObject } from './render.js';

/** `kubernetes-models/<group>/<version>/<Kind>` for an object's apiVersion and kind. */
export function modelModule(obj: Pick<K8sObject, 'apiVersion' | 'kind'>): string {
  const [groupOrVersion, version] = obj.apiVersion.split('/');
  const path = version === undefined ? `${groupOrVersion}` : `${groupOrVersion}/${version}`;
  return `kubernetes-models/${path}/${obj.kind}`;
}

interface ModelClass {
  new (data: unknown): { validate(): void };
}

/** Layer 1: returns the schema errors of one object ([] when valid). */
export async function schemaErrors(obj: K8sObject): Promise<string[]> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(modelModule(obj))) as Record<string, unknown>;
  } catch {
    return [`no Kubernetes schema for ${obj.apiVersion} ${obj.kind} (unknown kind or apiVersion)`];
  }
  const Model = mod[obj.kind] as ModelClass | undefined;
  if (typeof Model !== 'function') return [`no model class ${obj.kind} in ${modelModule(obj)}`];
  try {
    new Model(obj).validate();
    return [];
  } catch (err) {
    const e = err as { message?: string; errors?: Array<{ instancePath?: string; message?: string }> };
    if (Array.isArray(e.errors) && e.errors.length > 0) {
      return e.errors.map((x) => `${x.instancePath || '/'} ${x.message ?? 'invalid'}`);
    }
    return [e.message ?? String(err)];
  }
}

/**
 * Layer 2: type-checks every object against its kubernetes-models interface in one
 * TypeScript program. Returns, per object index, the errors (unknown fields, wrong
 * types, missing required fields); objects without errors are absent.
 */
export function strictFieldErrors(objects: K8sObject[]): Map<number, string[]> {
  const files = new Map<string, string>();
  const indexOf = new Map<string, number>();
  objects.forEach((obj, i) => {
    const file = join(REPO_ROOT, 'tests', 'k8s', `__strict_${i}__.ts`);
    const source =
      `import type { I${obj.kind} as T } from '${modelModule(obj)}';\n` +
      `export const value: T = ${JSON.stringify(obj, null, 2)};\n`;
    files.set(file, source);
    indexOf.set(file, i);
  });
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
    lib: ['lib.es2022.d.ts'],
  };
  const host = ts.createCompilerHost(options, true);
  const { fileExists, readFile, getSourceFile } = host;
  host.fileExists = (f) => files.has(f) || fileExists.call(host, f);
  host.readFile = (f) => files.get(f) ?? readFile.call(host, f);
  host.getSourceFile = (f, lang, onError, create) => {
    const text = files.get(f);
    if (text !== undefined) return ts.createSourceFile(f, text, lang, true, ts.ScriptKind.TS);
    return getSourceFile.call(host, f, lang, onError, create);
  };
  const program = ts.createProgram({ rootNames: [...files.keys()], options, host });
  const out = new Map<number, string[]>();
  for (const [file, i] of indexOf) {
    const sf = program.getSourceFile(file);
    if (!sf) {
      out.set(i, ['internal: virtual source file missing']);
      continue;
    }
    const diags = [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
    if (diags.length === 0) continue;
    out.set(
      i,
      diags.map((d) => {
        const text = ts.flattenDiagnosticMessageText(d.messageText, ' ');
        if (d.file && d.start !== undefined) {
          const { line } = d.file.getLineAndCharacterOfPosition(d.start);
          const lineText = d.file.text.split('\n')[line]?.trim() ?? '';
          return `${text} (at: ${lineText})`;
        }
        return text;
      }),
    );
  }
  return out;
}

/** Both layers for a list of objects: `kind/name: error` lines ([] when all valid). */
export async function validateObjects(objects: K8sObject[]): Promise<string[]> {
  const problems: string[] = [];
  for (const obj of objects) {
    for (const e of await schemaErrors(obj)) problems.push(`${obj.kind}/${obj.metadata.name}: ${e}`);
  }
  for (const [i, errors] of strictFieldErrors(objects)) {
    const obj = objects[i]!;
    for (const e of errors) problems.push(`${obj.kind}/${obj.metadata.name}: ${e}`);
  }
  return problems;
}
