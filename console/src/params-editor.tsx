import { useId, useMemo, useRef, useState } from "react";
import { lineOf, locate, parseJsonText, parsePath } from "./json-text.js";

export interface ParamsViolation {
  /** The path below params (`theme.color`), empty for params itself. */
  rest: string;
  description: string;
}

interface Marker {
  line: number | undefined;
  start: number;
  end: number;
  path: string;
  description: string;
}

/**
 * The tenant's params as a JSON document in a text area, with line numbers.
 * Errors are put where they belong: a syntax error on its line and column,
 * and each violation the service reported (`tenant.params.theme.color`) on
 * the line of that key, marked in the gutter and listed right under the
 * editor with a button that selects the key.
 */
export function ParamsEditor({
  value,
  onChange,
  violations,
  readOnly,
  showSyntaxError,
}: {
  value: string;
  onChange: (text: string) => void;
  violations: ParamsViolation[];
  readOnly?: boolean;
  showSyntaxError?: boolean;
}) {
  const id = useId();
  const textarea = useRef<HTMLTextAreaElement>(null);
  const gutter = useRef<HTMLDivElement>(null);
  const [blurred, setBlurred] = useState(false);
  const parsed = useMemo(() => parseJsonText(value), [value]);

  const markers: Marker[] = useMemo(() => {
    const list: Marker[] = [];
    if (!parsed.ok) {
      if (showSyntaxError || blurred) {
        const { line, column } = lineOf(value, parsed.offset);
        list.push({ line, start: parsed.offset, end: parsed.offset + 1, path: "", description: `Not valid JSON at column ${column}: ${parsed.message}.` });
      }
    } else if (parsed.value === null || typeof parsed.value !== "object" || Array.isArray(parsed.value)) {
      list.push({ line: 1, start: 0, end: value.length, path: "", description: "Params must be a JSON object ({ … })." });
    }
    for (const violation of violations) {
      const found = parsed.ok && violation.rest ? locate(parsed.spans, parsePath(violation.rest)) : undefined;
      list.push({
        line: found ? lineOf(value, found.span.start).line : undefined,
        start: found?.span.start ?? 0,
        end: found?.span.end ?? 0,
        path: violation.rest,
        description: violation.description,
      });
    }
    return list;
  }, [parsed, violations, value, showSyntaxError, blurred]);

  const lineCount = value.split("\n").length;
  const errorLines = new Set(markers.map((m) => m.line));
  const errorsId = `${id}-errors`;
  const hintId = `${id}-hint`;

  const select = (marker: Marker) => {
    const element = textarea.current;
    if (!element) return;
    element.focus();
    element.setSelectionRange(marker.start, marker.end);
  };

  return (
    <div className="field">
      <label htmlFor={id}>Params (JSON)</label>
      <p className="hint" id={hintId}>
        The tenant's configuration: a JSON object of at most 64 KiB.
      </p>
      <div className={`json-editor${markers.length ? " invalid" : ""}`}>
        <div className="gutter" ref={gutter} aria-hidden="true">
          {Array.from({ length: lineCount }, (_, i) => (
            <span key={i} className={errorLines.has(i + 1) ? "error-line" : undefined} data-line={i + 1}>
              {errorLines.has(i + 1) ? `! ${i + 1}` : i + 1}
            </span>
          ))}
        </div>
        <textarea
          id={id}
          ref={textarea}
          value={value}
          readOnly={readOnly}
          onChange={(e) => onChange(e.target.value)}
          onBlur={() => setBlurred(true)}
          onScroll={(e) => {
            if (gutter.current) gutter.current.scrollTop = e.currentTarget.scrollTop;
          }}
          rows={Math.min(Math.max(lineCount + 1, 6), 24)}
          wrap="off"
          spellCheck={false}
          autoCapitalize="off"
          autoComplete="off"
          aria-invalid={markers.length > 0 || undefined}
          aria-describedby={markers.length ? `${hintId} ${errorsId}` : hintId}
        />
      </div>
      {markers.length > 0 && (
        <ul className="field-error params-errors" id={errorsId}>
          {markers.map((marker, i) => (
            <li key={i} data-path={marker.path}>
              {marker.line !== undefined ? (
                <button type="button" className="link" onClick={() => select(marker)}>
                  Line {marker.line}
                </button>
              ) : null}
              {marker.path && (
                <>
                  {marker.line !== undefined ? " " : ""}
                  <code>{marker.path}</code>
                </>
              )}
              {marker.line !== undefined || marker.path ? ": " : ""}
              {marker.description}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** Params as the editor shows them. */
export function paramsText(params: unknown): string {
  return JSON.stringify(params ?? {}, null, 2);
}
