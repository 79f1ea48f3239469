import { invalidArgument, toConnectError, type FieldViolation } from "../common/errors.js";
import { DUPLICATE_NAME_RULE, keySegment, PROTO_KEY, PROTO_KEY_RULE } from "../common/json-keys.js";

/**
 * Request bodies in JSON (Connect, gRPC-Web and gRPC with JSON) reach the
 * handlers through protobuf-es, which parses them with JSON.parse: of
 * duplicate names only the last survives, and a `__proto__` key inside a
 * Struct is then dropped (json-keys.ts). Neither is visible in the parsed
 * message, so the text is checked first, for every method: a duplicate name
 * or a `__proto__` name anywhere is INVALID_ARGUMENT naming it, with the
 * names as the client wrote them (`tenant.params.a.__proto__`). Go's
 * protojson refuses duplicates the same way.
 *
 * Text that is not valid JSON passes unchanged: JSON.parse reports it.
 */
export function findJsonNameProblem(text: string): FieldViolation | undefined {
  // Iterative, so that deeply nested input cannot overflow the stack. Each
  // open object or array is a frame; its `key` or `index` is the position
  // of the value being read, for the path of a problem.
  const stack: Array<{ names?: Set<string>; key: string; index: number }> = [];
  const path = (): string =>
    stack.map((frame, depth) => (frame.names ? `${depth === 0 ? "" : "."}${keySegment(frame.key)}` : `[${frame.index}]`)).join("");
  let i = 0;
  const n = text.length;
  const space = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      i++;
    }
  };
  let backslash = 0;
  /** The string starting at i (a quote), decoded; i moves past it. Undefined when malformed. */
  const string = (): string | undefined => {
    const start = i;
    const end = text.indexOf('"', start + 1);
    if (end === -1) return undefined;
    // Searched again only once passed, so that plain strings cost one indexOf.
    if (backslash !== -1 && backslash <= start) backslash = text.indexOf("\\", start + 1);
    if (backslash === -1 || backslash > end) {
      i = end + 1;
      return text.slice(start + 1, end);
    }
    // Escapes: find the closing quote past them, then let JSON.parse decode.
    for (i = backslash; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x5c) i++;
      else if (c === 0x22) {
        i++;
        try {
          return JSON.parse(text.slice(start, i)) as string;
        } catch {
          return undefined;
        }
      }
    }
    return undefined;
  };
  /** Reads a member name and its colon; a problem, "malformed", or undefined when fine. */
  const member = (frame: { names?: Set<string>; key: string }): FieldViolation | "malformed" | undefined => {
    if (text.charCodeAt(i) !== 0x22) return "malformed";
    const name = string();
    if (name === undefined) return "malformed";
    space();
    if (text.charCodeAt(i) !== 0x3a) return "malformed";
    i++;
    frame.key = name;
    if (name === PROTO_KEY) return { field: path(), description: PROTO_KEY_RULE };
    if (frame.names!.has(name)) return { field: path(), description: DUPLICATE_NAME_RULE };
    frame.names!.add(name);
    return undefined;
  };

  for (;;) {
    // A value starts here.
    space();
    const c = text.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) {
      i++;
      space();
      const frame = { names: c === 0x7b ? new Set<string>() : undefined, key: "", index: 0 };
      stack.push(frame);
      const close = c === 0x7b ? 0x7d : 0x5d;
      if (text.charCodeAt(i) !== close) {
        if (frame.names) {
          const problem = member(frame);
          if (problem === "malformed") return undefined;
          if (problem) return problem;
        }
        continue;
      }
      // An empty object or array: closed below.
    } else if (c === 0x22) {
      if (string() === undefined) return undefined;
    } else if (i < n) {
      // A number, true, false or null: up to the next delimiter.
      for (; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x2c || d === 0x5d || d === 0x7d || d === 0x20 || d === 0x0a || d === 0x0d || d === 0x09) break;
      }
    } else {
      return undefined;
    }
    // After a value: a comma continues the innermost container, a bracket closes it.
    for (;;) {
      space();
      if (stack.length === 0) return undefined;
      const frame = stack[stack.length - 1]!;
      const d = text.charCodeAt(i);
      if (d === 0x2c) {
        i++;
        if (frame.names) {
          space();
          const problem = member(frame);
          if (problem === "malformed") return undefined;
          if (problem) return problem;
        } else {
          frame.index++;
        }
        break;
      }
      if (d === (frame.names ? 0x7d : 0x5d)) {
        i++;
        stack.pop();
        continue;
      }
      return undefined;
    }
  }
}

/**
 * The text decoder given to Connect for JSON bodies (`jsonOptions.textDecoder`,
 * which Connect calls on each message before JSON.parse): it decodes as
 * TextDecoder does, then refuses what findJsonNameProblem finds.
 */
export function strictJsonTextDecoder(): { decode(data?: Uint8Array): string } {
  const utf8 = new TextDecoder();
  return {
    decode(data) {
      const text = utf8.decode(data);
      const problem = findJsonNameProblem(text);
      if (problem) throw toConnectError(invalidArgument(problem.field, problem.description));
      return text;
    },
  };
}
