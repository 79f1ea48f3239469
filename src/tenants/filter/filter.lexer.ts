/**
 * Lexer for the tenant filter language (a subset of Google AIP-160).
 *
 * Positions are 1-based and count Unicode code points, not UTF-16 units, so
 * that a client in any language can point at the offending character.
 */

/** A filter that cannot be parsed or compiled; `position` is 1-based. */
export class FilterError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(message);
    this.name = "FilterError";
  }
}

export type Operator = "=" | "!=" | "<" | "<=" | ">" | ">=" | ":";

/**
 * One dot-separated part of a word: `params.plan.\`a b\`` has the segments
 * `params`, `plan` and `a b` (the last one backtick-quoted).
 */
export interface Segment {
  text: string;
  quoted: boolean;
  position: number;
}

export type Token =
  | { kind: "lparen" | "rparen" | "star" | "minus" | "and" | "or" | "not" | "end"; position: number }
  | { kind: "comparator"; operator: Operator; position: number }
  | { kind: "string"; value: string; raw: string; position: number }
  /**
   * A bare word: a field path, a number, `true`/`false`, or an unquoted
   * string value. Which one it is depends on where it stands, so the parser
   * decides; `raw` is the source text, `segments` the dot-separated parts.
   */
  | { kind: "word"; raw: string; segments: Segment[]; position: number };

const KEYWORDS = { AND: "and", OR: "or", NOT: "not" } as const;

const ESCAPES: Record<string, string> = { '"': '"', "'": "'", "\\": "\\", n: "\n", t: "\t" };

const isSpace = (c: string | undefined) => c === " " || c === "\t" || c === "\n" || c === "\r";
const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";
const isWordChar = (c: string | undefined) => c !== undefined && /^[A-Za-z0-9_.-]$/.test(c);
/** NUL cannot be stored in a PostgreSQL text value: binding it would fail at run time. */
const isForbidden = (c: string | undefined) => c === "\u0000";

/** Splits a filter into tokens; the last token is always `end`. */
export function tokenize(filter: string): Token[] {
  return new Lexer(filter).run();
}

class Lexer {
  /** Code points, so that indexes are character positions. */
  private readonly chars: string[];
  private index = 0;
  private readonly tokens: Token[] = [];

  constructor(filter: string) {
    this.chars = Array.from(filter);
  }

  run(): Token[] {
    for (;;) {
      while (isSpace(this.peek())) this.index++;
      const c = this.peek();
      if (c === undefined) break;
      this.tokens.push(this.next(c));
    }
    this.tokens.push({ kind: "end", position: this.chars.length + 1 });
    return this.tokens;
  }

  private peek(offset = 0): string | undefined {
    return this.chars[this.index + offset];
  }

  private get position(): number {
    return this.index + 1;
  }

  private next(c: string): Token {
    const position = this.position;
    switch (c) {
      case "(":
        this.index++;
        return { kind: "lparen", position };
      case ")":
        this.index++;
        return { kind: "rparen", position };
      case "*":
        this.index++;
        return { kind: "star", position };
      case '"':
      case "'":
        return this.string(c);
      case "-":
        // After a comparator, "-5" is a negative number; anywhere else "-"
        // negates the following term (AIP-160's "-name:x").
        if (this.lastTokenIsComparator() && isDigit(this.peek(1))) return this.word();
        this.index++;
        return { kind: "minus", position };
    }
    const operator = this.operator();
    if (operator) return { kind: "comparator", operator, position };
    if (c === "`" || (isWordChar(c) && c !== "-")) return this.word();
    throw new FilterError(`unexpected character ${JSON.stringify(c)} at position ${position}`, position);
  }

  private lastTokenIsComparator(): boolean {
    return this.tokens[this.tokens.length - 1]?.kind === "comparator";
  }

  /** Longest match first, so that "<=" is not read as "<" followed by "=". */
  private operator(): Operator | undefined {
    const two = `${this.peek() ?? ""}${this.peek(1) ?? ""}`;
    if (two === "!=" || two === "<=" || two === ">=") {
      this.index += 2;
      return two;
    }
    const one = this.peek();
    if (one === "=" || one === "<" || one === ">" || one === ":") {
      this.index++;
      return one;
    }
    return undefined;
  }

  private string(quote: string): Token {
    const start = this.position;
    this.index++;
    let value = "";
    for (;;) {
      const c = this.peek();
      if (c === undefined) {
        throw new FilterError(`unterminated string starting at position ${start}`, start);
      }
      if (c === quote) break;
      this.rejectForbidden(c);
      if (c === "\\") {
        value += this.escape(start);
        continue;
      }
      value += c;
      this.index++;
    }
    this.index++;
    return { kind: "string", value, raw: this.chars.slice(start - 1, this.index).join(""), position: start };
  }

  private escape(stringStart: number): string {
    const position = this.position;
    const c = this.peek(1);
    if (c === undefined) {
      throw new FilterError(`unterminated string starting at position ${stringStart}`, stringStart);
    }
    const replacement = ESCAPES[c];
    if (replacement === undefined) {
      throw new FilterError(`invalid escape ${JSON.stringify(`\\${c}`)} at position ${position}`, position);
    }
    this.index += 2;
    return replacement;
  }

  /**
   * A run of word characters and backtick-quoted segments, split at the dots
   * that are not inside backticks. A backtick-quoted segment must be a whole
   * segment: `a.\`b\`.c` is fine, `a\`b\`` is not.
   */
  private word(): Token {
    const start = this.position;
    const segments: Segment[] = [];
    let current: Segment = { text: "", quoted: false, position: start };
    for (;;) {
      const c = this.peek();
      if (c === "`") {
        if (current.text !== "" || current.quoted) this.misplacedBacktick();
        current = { text: this.backtickSegment(), quoted: true, position: current.position };
      } else if (c === ".") {
        segments.push(current);
        this.index++;
        current = { text: "", quoted: false, position: this.position };
      } else if (isWordChar(c) || this.isExponentSign(c, start)) {
        if (current.quoted) this.misplacedBacktick();
        current.text += c;
        this.index++;
      } else {
        break;
      }
    }
    segments.push(current);
    const raw = this.chars.slice(start - 1, this.index).join("");
    const keyword = segments.length === 1 && !current.quoted ? KEYWORDS[raw as keyof typeof KEYWORDS] : undefined;
    if (keyword) return { kind: keyword, position: start };
    return { kind: "word", raw, segments, position: start };
  }

  /** "+" belongs to a word only as the exponent sign of a number: `1e+5`. */
  private isExponentSign(c: string | undefined, wordStart: number): boolean {
    if (c !== "+") return false;
    const wordSoFar = this.chars.slice(wordStart - 1, this.index).join("");
    return /^-?\d+(\.\d+)?[eE]$/.test(wordSoFar);
  }

  private misplacedBacktick(): never {
    const position = this.position;
    throw new FilterError(`backtick-quoted key must be a whole segment between dots at position ${position}`, position);
  }

  /** `` `a``b` `` is the key a`b. */
  private backtickSegment(): string {
    const start = this.position;
    this.index++;
    let text = "";
    for (;;) {
      const c = this.peek();
      if (c === undefined) {
        throw new FilterError(`unterminated backtick-quoted key starting at position ${start}`, start);
      }
      this.rejectForbidden(c);
      if (c === "`") {
        if (this.peek(1) !== "`") break;
        this.index++;
      }
      text += c;
      this.index++;
    }
    this.index++;
    return text;
  }

  private rejectForbidden(c: string): void {
    if (isForbidden(c)) {
      const position = this.position;
      throw new FilterError(`NUL character not allowed at position ${position}`, position);
    }
  }
}
