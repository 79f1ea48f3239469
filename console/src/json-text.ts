/**
 * JSON text with positions: parses a document as JSON.parse does, and also
 * records where each key and array element starts, so that an error the
 * service reports on `tenant.params.theme.color` can be shown on the line
 * of `"color"`; a syntax error comes back with its line and column.
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type PathSegment = string | number;

export interface Span {
  start: number;
  end: number;
}

export type ParsedJson =
  | { ok: true; value: JsonValue; spans: Map<string, Span> }
  | { ok: false; message: string; offset: number };

const spanKey = (path: PathSegment[]) => JSON.stringify(path);

class Syntax extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

export function parseJsonText(text: string): ParsedJson {
  let i = 0;
  const spans = new Map<string, Span>();
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const describe = () => (i >= text.length ? "the text ends too early" : `unexpected ${JSON.stringify(text[i])}`);
  const string = (): string => {
    const start = i;
    i++; // the opening quote
    while (i < text.length && text[i] !== '"') {
      if (text[i] === "\\") i++;
      else if (text.charCodeAt(i) < 0x20) throw new Syntax("control characters must be escaped in strings", i);
      i++;
    }
    if (i >= text.length) throw new Syntax("a string is not closed", start);
    i++;
    try {
      return JSON.parse(text.slice(start, i)) as string;
    } catch {
      throw new Syntax("a string has an invalid escape", start);
    }
  };
  const value = (path: PathSegment[]): JsonValue => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const object: { [key: string]: JsonValue } = {};
      ws();
      if (text[i] === "}") {
        i++;
        return object;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') throw new Syntax(`expected a key in double quotes, ${describe()}`, i);
        const keyStart = i;
        const key = string();
        spans.set(spanKey([...path, key]), { start: keyStart, end: i });
        ws();
        if (text[i] !== ":") throw new Syntax(`expected ":" after the key, ${describe()}`, i);
        i++;
        // As JSON.parse does: a "__proto__" key is an own property, not the prototype.
        Object.defineProperty(object, key, { value: value([...path, key]), enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return object;
        }
        throw new Syntax(`expected "," or "}", ${describe()}`, i);
      }
    }
    if (c === "[") {
      i++;
      const array: JsonValue[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return array;
      }
      for (;;) {
        ws();
        const elementStart = i;
        const index = array.length;
        array.push(value([...path, index]));
        spans.set(spanKey([...path, index]), { start: elementStart, end: i });
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return array;
        }
        throw new Syntax(`expected "," or "]", ${describe()}`, i);
      }
    }
    if (c === '"') return string();
    const literal = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i, i + 400));
    if (!literal) throw new Syntax(`expected a value, ${describe()}`, i);
    i += literal[0].length;
    return JSON.parse(literal[0]) as JsonValue;
  };
  try {
    const result = value([]);
    ws();
    if (i < text.length) throw new Syntax(`unexpected text after the end of the document`, i);
    return { ok: true, value: result, spans };
  } catch (error) {
    if (error instanceof Syntax) return { ok: false, message: error.message, offset: error.offset };
    throw error;
  }
}

/**
 * A field path below params as the service writes it (`theme.color`,
 * `items[2].name`, ``` `example.com`.limit ```) as segments.
 */
export function parsePath(path: string): PathSegment[] {
  const segments: PathSegment[] = [];
  let i = 0;
  while (i < path.length) {
    const c = path[i]!;
    if (c === ".") {
      i++;
    } else if (c === "`") {
      const end = path.indexOf("`", i + 1);
      segments.push(path.slice(i + 1, end < 0 ? path.length : end));
      i = end < 0 ? path.length : end + 1;
    } else if (c === "[") {
      const end = path.indexOf("]", i);
      const inside = path.slice(i + 1, end < 0 ? path.length : end);
      segments.push(/^\d+$/.test(inside) ? Number(inside) : inside);
      i = end < 0 ? path.length : end + 1;
    } else {
      const match = /^[^.[`]+/.exec(path.slice(i))!;
      segments.push(match[0]);
      i += match[0].length;
    }
  }
  return segments;
}

/** The span of the deepest key of `path` present in the document. */
export function locate(spans: Map<string, Span>, path: PathSegment[]): { span: Span; exact: boolean } | undefined {
  for (let n = path.length; n > 0; n--) {
    const span = spans.get(spanKey(path.slice(0, n)));
    if (span) return { span, exact: n === path.length };
  }
  return undefined;
}

/** 1-based line and column of an offset. */
export function lineOf(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, column: offset - before.lastIndexOf("\n") };
}
