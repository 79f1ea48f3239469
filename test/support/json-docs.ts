import fc from "fast-check";

/**
 * Generated params documents whose keys are mostly the names on
 * Object.prototype (`constructor`, `toString`, `__proto__`, ...), at every
 * depth, in objects and inside arrays: the keys that code treating a
 * document as a JavaScript object trips on (issue 16).
 */
export const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype);

export const jsonKey = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...PROTOTYPE_NAMES) },
  { weight: 1, arbitrary: fc.constantFrom("a", "b", "x.y", "with`tick", "with space", "é", "𝄞", "0", "1", "") },
  { weight: 1, arbitrary: fc.string({ maxLength: 4 }) },
);

/** Numbers that params can hold: finite, and not -0 (which jsonb stores as 0). */
const jsonNumber = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Object.is(n, -0)));

const arbitraries = fc.letrec<{ value: unknown; object: Record<string, unknown> }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    jsonNumber,
    fc.string({ maxLength: 8 }),
    fc.array(tie("value"), { maxLength: 3 }),
    tie("object"),
  ),
  object: fc.uniqueArray(fc.tuple(jsonKey, tie("value")), { maxLength: 4, selector: ([k]) => k }).map(objectOf),
}));

export const jsonValue = arbitraries.value;

/** A params document of one to five keys. */
export const jsonDocument = fc.uniqueArray(fc.tuple(jsonKey, jsonValue), { minLength: 1, maxLength: 5, selector: ([k]) => k }).map(objectOf);

/**
 * An object with these own properties, `__proto__` included (an assignment
 * or an object literal would set the prototype instead).
 */
export function objectOf(entries: ReadonlyArray<readonly [string, unknown]>): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (const [key, value] of entries) Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  return object;
}

/** A key as written in update masks and filters, always backtick-quoted. */
export const quoted = (key: string) => `\`${key.replace(/`/g, "``")}\``;

/**
 * The field path of the first `__proto__` key in document order (the order
 * a client writes keys in), which the service must name in its refusal.
 */
export function protoKeyPath(value: unknown, path: string): string | undefined {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = protoKeyPath(value[i], `${path}[${i}]`);
      if (found) return found;
    }
  } else if (value !== null && typeof value === "object") {
    for (const key of Object.keys(value)) {
      const segment = /^[A-Za-z0-9_-]+$/.test(key) ? key : quoted(key);
      if (key === "__proto__") return `${path}.${segment}`;
      const found = protoKeyPath((value as Record<string, unknown>)[key], `${path}.${segment}`);
      if (found) return found;
    }
  }
  return undefined;
}

/** JSON with sorted keys: compares documents whatever their key order, with any key (`constructor` too). */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}
