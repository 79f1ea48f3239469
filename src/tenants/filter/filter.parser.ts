/**
 * Parser for the tenant filter language: tokens -> AST.
 *
 * Grammar (AIP-160, reduced to what tenants need):
 *
 *   filter      = [ expression ]
 *   expression  = factor { [ "AND" ] factor }       -- juxtaposition is AND too
 *   factor      = term { "OR" term }                -- so OR binds tighter than AND
 *   term        = ( "NOT" | "-" ) term | simple
 *   simple      = "(" expression ")" | restriction
 *   restriction = field comparator value
 *
 * The parser checks syntax, field names and the size limits; whether a value
 * suits its field and operator is checked when compiling to SQL.
 */
import { FilterError, tokenize, type Operator, type Segment, type Token } from "./filter.lexer.js";

export const MAX_FILTER_LENGTH = 2000;
/** Parentheses and negations both count, as each nests the generated SQL. */
export const MAX_DEPTH = 32;
export const MAX_COMPARISONS = 100;

export type ColumnField = "name" | "domain" | "create_time" | "update_time" | "params_schema";

export type Field =
  | { kind: "column"; name: ColumnField; position: number }
  | { kind: "params"; path: string[]; position: number };

export type Value =
  | { kind: "string"; value: string; position: number }
  | { kind: "number"; text: string; position: number }
  | { kind: "bool"; value: boolean; position: number }
  /** `*`, as in `params.plan:*` (the key is present). */
  | { kind: "any"; position: number };

export interface Comparison {
  kind: "comparison";
  field: Field;
  operator: Operator;
  operatorPosition: number;
  value: Value;
}

export type FilterNode =
  | Comparison
  | { kind: "and" | "or"; children: FilterNode[] }
  | { kind: "not"; child: FilterNode };

const COLUMN_FIELDS: readonly string[] = ["name", "domain", "create_time", "update_time", "params_schema"] satisfies ColumnField[];

const NUMBER = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/;

/** Parses a filter; returns null when it is empty or only whitespace. */
export function parseFilter(filter: string): FilterNode | null {
  checkLength(filter);
  const tokens = tokenize(filter);
  if (tokens[0]?.kind === "end") return null;
  return new Parser(tokens).parse();
}

function checkLength(filter: string): void {
  // filter.length counts UTF-16 units, an upper bound of the code points, so
  // only long strings need to be counted properly.
  if (filter.length <= MAX_FILTER_LENGTH) return;
  const length = Array.from(filter).length;
  if (length > MAX_FILTER_LENGTH) {
    const position = MAX_FILTER_LENGTH + 1;
    throw new FilterError(
      `filter is too long: ${length} characters, at most ${MAX_FILTER_LENGTH} allowed (position ${position})`,
      position,
    );
  }
}

/** How a token is shown in error messages. */
function describe(token: Token): string {
  switch (token.kind) {
    case "end":
      return "end of filter";
    case "lparen":
      return '"("';
    case "rparen":
      return '")"';
    case "star":
      return '"*"';
    case "minus":
      return '"-"';
    case "and":
      return '"AND"';
    case "or":
      return '"OR"';
    case "not":
      return '"NOT"';
    case "comparator":
      return JSON.stringify(token.operator);
    case "string":
    case "word":
      return JSON.stringify(token.raw.length > 40 ? `${token.raw.slice(0, 40)}...` : token.raw);
  }
}

function unexpected(token: Token, expected?: string): FilterError {
  const hint = expected === undefined ? "" : ` (expected ${expected})`;
  return new FilterError(`unexpected ${describe(token)} at position ${token.position}${hint}`, token.position);
}

class Parser {
  private index = 0;
  private depth = 0;
  private comparisons = 0;

  constructor(private readonly tokens: Token[]) {}

  parse(): FilterNode {
    const node = this.expression();
    const token = this.peek();
    if (token.kind !== "end") throw unexpected(token);
    return node;
  }

  private peek(): Token {
    // tokenize() always ends with an "end" token and the parser never moves past it.
    return this.tokens[this.index]!;
  }

  private advance(): Token {
    const token = this.peek();
    if (token.kind !== "end") this.index++;
    return token;
  }

  private startsTerm(token: Token): boolean {
    return token.kind === "word" || token.kind === "lparen" || token.kind === "not" || token.kind === "minus";
  }

  private expression(): FilterNode {
    const factors = [this.factor()];
    for (;;) {
      const token = this.peek();
      if (token.kind === "and") {
        this.advance();
        factors.push(this.factor());
      } else if (this.startsTerm(token)) {
        factors.push(this.factor());
      } else {
        break;
      }
    }
    return combine("and", factors);
  }

  private factor(): FilterNode {
    const terms = [this.term()];
    while (this.peek().kind === "or") {
      this.advance();
      terms.push(this.term());
    }
    return combine("or", terms);
  }

  private term(): FilterNode {
    const token = this.peek();
    if (token.kind === "not" || token.kind === "minus") {
      this.advance();
      return this.nested(token, () => ({ kind: "not", child: this.term() }));
    }
    if (token.kind === "lparen") {
      this.advance();
      return this.nested(token, () => {
        const inner = this.expression();
        const close = this.peek();
        if (close.kind !== "rparen") throw unexpected(close, `")" to close "(" at position ${token.position}`);
        this.advance();
        return inner;
      });
    }
    if (token.kind === "word") return this.restriction(token);
    throw unexpected(token, "a field, \"(\", \"NOT\" or \"-\"");
  }

  private nested(opener: Token, parse: () => FilterNode): FilterNode {
    this.depth++;
    if (this.depth > MAX_DEPTH) {
      throw new FilterError(
        `filter is nested too deeply at position ${opener.position} (at most ${MAX_DEPTH} levels of parentheses and negations)`,
        opener.position,
      );
    }
    const node = parse();
    this.depth--;
    return node;
  }

  private restriction(fieldToken: Extract<Token, { kind: "word" }>): Comparison {
    this.advance();
    this.comparisons++;
    if (this.comparisons > MAX_COMPARISONS) {
      throw new FilterError(
        `too many comparisons at position ${fieldToken.position} (at most ${MAX_COMPARISONS} allowed)`,
        fieldToken.position,
      );
    }
    const field = resolveField(fieldToken);
    const comparator = this.peek();
    if (comparator.kind !== "comparator") throw unexpected(comparator, `a comparator after ${quoteField(fieldToken)}`);
    this.advance();
    const value = this.value(comparator.operator);
    return { kind: "comparison", field, operator: comparator.operator, operatorPosition: comparator.position, value };
  }

  private value(operator: Operator): Value {
    const token = this.peek();
    const { position } = token;
    switch (token.kind) {
      case "string":
        this.advance();
        return { kind: "string", value: token.value, position };
      case "star":
        this.advance();
        return { kind: "any", position };
      case "word":
        this.advance();
        return bareValue(token);
      default:
        throw new FilterError(
          `missing value after ${JSON.stringify(operator)} at position ${position} (found ${describe(token)})`,
          position,
        );
    }
  }
}

function combine(kind: "and" | "or", children: FilterNode[]): FilterNode {
  return children.length === 1 ? children[0]! : { kind, children };
}

function quoteField(token: Extract<Token, { kind: "word" }>): string {
  return JSON.stringify(token.raw);
}

/** An unquoted value: a number, a boolean, or else a string (AIP-160 allows `domain:example.com`). */
function bareValue(token: Extract<Token, { kind: "word" }>): Value {
  const { raw, position } = token;
  const quoted = token.segments.find((segment) => segment.quoted);
  if (quoted) {
    throw new FilterError(`backtick-quoted text is not a value at position ${quoted.position} (quote values with " or ')`, quoted.position);
  }
  if (raw === "true" || raw === "false") return { kind: "bool", value: raw === "true", position };
  if (NUMBER.test(raw)) return { kind: "number", text: raw, position };
  return { kind: "string", value: raw, position };
}

function resolveField(token: Extract<Token, { kind: "word" }>): Field {
  const [head, ...keys] = token.segments as [Segment, ...Segment[]];
  const { position } = token;
  if (head.text === "params" && !head.quoted) {
    if (keys.length === 0) {
      throw new FilterError(`field "params" needs a key, as in "params.plan", at position ${position}`, position);
    }
    return { kind: "params", path: keys.map(checkKey), position };
  }
  if (keys.length === 0 && !head.quoted && COLUMN_FIELDS.includes(head.text)) {
    return { kind: "column", name: head.text as ColumnField, position };
  }
  throw new FilterError(`unknown field ${quoteField(token)} at position ${position}`, position);
}

/** Unquoted keys are `[A-Za-z0-9_-]+`, which the lexer guarantees except for emptiness. */
function checkKey(segment: Segment): string {
  if (segment.text === "" && !segment.quoted) {
    throw new FilterError(`empty key at position ${segment.position} (quote unusual keys with backticks)`, segment.position);
  }
  return segment.text;
}
