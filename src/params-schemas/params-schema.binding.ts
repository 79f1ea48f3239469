import type { Violations } from "../common/errors.js";

/** Schema names: a letter, then letters, digits, `.`, `_` or `-`; 63 characters at most. */
const NAME = /^[a-z][a-z0-9._-]{0,62}$/;
const BINDING = /^([a-z][a-z0-9._-]{0,62})@([1-9][0-9]{0,8})$/;

export interface SchemaVersionRef {
  name: string;
  version: number;
}

export function isSchemaName(name: string): boolean {
  return NAME.test(name);
}

export function checkSchemaName(name: string, field: string, violations: Violations): void {
  if (name === "") violations.add(field, "is required");
  else if (!NAME.test(name)) {
    violations.add(field, "must be 1 to 63 characters of a-z, 0-9, '.', '_' and '-', starting with a letter");
  }
}

/**
 * Reads `name@version` (Tenant.params_schema); empty is free-form (null).
 * A malformed value is a violation of `field`.
 */
export function parseBinding(text: string, field: string, violations: Violations): SchemaVersionRef | null | undefined {
  if (text === "") return null;
  const match = BINDING.exec(text);
  if (!match) {
    violations.add(field, `must be "<name>@<version>" as in "program@3" (or empty for free-form params), got ${JSON.stringify(text.slice(0, 80))}`);
    return undefined;
  }
  return { name: match[1]!, version: Number(match[2]) };
}

export function formatBinding(ref: SchemaVersionRef): string {
  return `${ref.name}@${ref.version}`;
}
