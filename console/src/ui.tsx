import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { useEffect, useId, useRef, useState, type InputHTMLAttributes, type ReactNode } from "react";
import { Tenant_State } from "../../gen/tenancy/v1/tenant_pb.js";
import { unplacedFields, type Problem } from "./errors.js";
import { hasNavigated } from "./router.js";

/**
 * The page's main heading. After a move to another page it takes the focus,
 * so that keyboard and screen reader users start there (as they do after a
 * full page load).
 */
export function PageHeading({ children, title }: { children: ReactNode; title: string }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · tenancy console`;
    if (hasNavigated) ref.current?.focus();
  }, [title]);
  return (
    <h1 ref={ref} tabIndex={-1}>
      {children}
    </h1>
  );
}

/**
 * A table of records, in a labelled region that scrolls sideways on a
 * narrow screen and takes the focus, so that keyboard users can scroll it.
 * `columns` are the header cells (false leaves one out); the children are
 * the body's rows.
 */
export function DataTable({
  label,
  columns,
  className,
  children,
}: {
  label: string;
  columns: ReadonlyArray<string | false>;
  className?: string;
  children: ReactNode;
}) {
  return (
    <div className="table-wrap" role="region" aria-label={label} tabIndex={0}>
      <table className={className}>
        <thead>
          <tr>
            {columns.map((column) =>
              column === false ? null : (
                <th key={column} scope="col">
                  {column}
                </th>
              ),
            )}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

/**
 * Previous and next page of a keyset-paged list. `tokens` are the page
 * tokens of the pages up to the current one (the first is ""); shown only
 * when there is another page.
 */
export function Pager({
  label,
  tokens,
  setTokens,
  nextPageToken,
}: {
  label: string;
  tokens: string[];
  setTokens: (tokens: string[]) => void;
  nextPageToken: string;
}) {
  if (tokens.length === 1 && !nextPageToken) return null;
  return (
    <nav className="pager" aria-label={label}>
      <button type="button" disabled={tokens.length === 1} onClick={() => setTokens(tokens.slice(0, -1))}>
        Previous page
      </button>
      <button type="button" disabled={!nextPageToken} onClick={() => setTokens([...tokens, nextPageToken])}>
        Next page
      </button>
    </nav>
  );
}

export function TextField({
  label,
  hint,
  errors = [],
  ...input
}: { label: string; hint?: ReactNode; errors?: string[] } & InputHTMLAttributes<HTMLInputElement>) {
  const id = useId();
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const describedBy = [hint ? hintId : "", errors.length ? errorId : ""].filter(Boolean).join(" ") || undefined;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {hint && (
        <p className="hint" id={hintId}>
          {hint}
        </p>
      )}
      <input id={id} aria-invalid={errors.length > 0 || undefined} aria-describedby={describedBy} {...input} />
      {errors.length > 0 && (
        <p className="field-error" id={errorId}>
          {errors.join(" ")}
        </p>
      )}
    </div>
  );
}

/** An error the person must read: announced at once, and says what to do. */
export function ErrorBanner({ problem, children }: { problem?: Problem | undefined; children?: ReactNode }) {
  if (!problem && !children) return null;
  return (
    <div className="banner banner-error" role="alert">
      {problem && <p>{problem.message}</p>}
      {children}
    </div>
  );
}

/** News that is announced without interrupting. */
export function Notice({ children }: { children: ReactNode }) {
  return (
    <div className="banner banner-info" role="status">
      {children}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="loading" role="status">
      Loading {what}…
    </p>
  );
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function Time({ value }: { value: Timestamp | undefined }) {
  if (!value) return <span>—</span>;
  const date = timestampDate(value);
  return <time dateTime={date.toISOString()}>{dateTime.format(date)}</time>;
}

export function stateName(state: Tenant_State): string {
  switch (state) {
    case Tenant_State.ACTIVE:
      return "Active";
    case Tenant_State.SUSPENDED:
      return "Suspended";
    case Tenant_State.DELETED:
      return "Deleted";
    default:
      return "Unknown";
  }
}

export function StateBadge({ state }: { state: Tenant_State }) {
  return <span className={`badge badge-${stateName(state).toLowerCase()}`}>{stateName(state)}</span>;
}

/**
 * A modal confirmation (the native dialog element: focus moves into it and
 * stays there, Escape cancels). With `typeToConfirm`, the button works only
 * once that text is typed, for what cannot be undone.
 */
export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  danger,
  typeToConfirm,
  busy,
  problem,
  onConfirm,
  onClose,
}: {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  danger?: boolean;
  typeToConfirm?: string;
  busy?: boolean;
  problem?: Problem | undefined;
  onConfirm: () => void;
  onClose: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const [typed, setTyped] = useState("");
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog?.close();
  }, []);
  const ready = typeToConfirm === undefined || typed.trim() === typeToConfirm;
  return (
    <dialog ref={ref} aria-labelledby={titleId} onCancel={(e) => (e.preventDefault(), onClose())}>
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          if (ready && !busy) onConfirm();
        }}
      >
        <h2 id={titleId}>{title}</h2>
        {children}
        {typeToConfirm !== undefined && (
          <TextField label={`Type the tenant's name, ${typeToConfirm}, to confirm`} value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" />
        )}
        <ErrorBanner problem={problem} />
        <div className="actions">
          <button type="submit" className={danger ? "danger" : "primary"} disabled={!ready || busy}>
            {busy ? "Working…" : confirmLabel}
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}

/** A form's error: the sentence, the violations of fields the form does not show, and any local error. */
export function FormError({ problem, placed, local }: { problem: Problem | undefined; placed: string[]; local?: string | undefined }) {
  if (!problem && !local) return null;
  const others = unplacedFields(problem, placed);
  return (
    <div className="banner banner-error" role="alert">
      {problem && <p>{problem.message}</p>}
      {others.length > 0 && (
        <ul>
          {others.map((f) => (
            <li key={f.field}>
              <code>{f.field}</code>: {f.description}
            </li>
          ))}
        </ul>
      )}
      {local && <p>{local}</p>}
    </div>
  );
}
