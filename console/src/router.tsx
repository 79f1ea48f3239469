import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from "react";

/**
 * A few routes under /console/ on the History API, so that every page has
 * an address that survives a reload (the service answers index.html for
 * them). Small enough not to need a router package.
 */
const BASE = "/console";
const CHANGE = "console:navigate";

function subscribe(onChange: () => void) {
  window.addEventListener("popstate", onChange);
  window.addEventListener(CHANGE, onChange);
  return () => {
    window.removeEventListener("popstate", onChange);
    window.removeEventListener(CHANGE, onChange);
  };
}

const snapshot = () => location.pathname + location.search;

/** The path below /console (starting with "/") and the query string. */
export function useLocation(): { path: string; search: URLSearchParams } {
  const current = useSyncExternalStore(subscribe, snapshot);
  const url = new URL(current, location.origin);
  const path = url.pathname.startsWith(BASE) ? url.pathname.slice(BASE.length) || "/" : "/";
  return { path, search: url.searchParams };
}

export function href(to: string): string {
  return BASE + to;
}

/** True once the console moved to another page by itself (not on the first load). */
export let hasNavigated = false;

window.addEventListener("popstate", () => {
  hasNavigated = true;
});

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  hasNavigated = true;
  if (options.replace) history.replaceState(null, "", href(to));
  else history.pushState(null, "", href(to));
  window.dispatchEvent(new Event(CHANGE));
}

export function currentPath(): string {
  return snapshot().slice(BASE.length) || "/";
}

export function Link({ to, onClick, ...rest }: AnchorHTMLAttributes<HTMLAnchorElement> & { to: string }) {
  const follow = (event: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(event);
    // Let the browser open new tabs and windows itself.
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(to);
  };
  return <a href={href(to)} onClick={follow} {...rest} />;
}

export type Route =
  | { page: "tenants" }
  | { page: "new-tenant" }
  | { page: "tenant"; id: string; tab: "settings" | "members" | "history" }
  | { page: "not-found" };

export function match(path: string): Route {
  if (path === "/" || path === "/tenants") return { page: "tenants" };
  if (path === "/tenants/new") return { page: "new-tenant" };
  const tenant = /^\/tenants\/([^/]+)(?:\/(members|history))?\/?$/.exec(path);
  if (tenant) return { page: "tenant", id: decodeURIComponent(tenant[1]!), tab: (tenant[2] as "members" | "history" | undefined) ?? "settings" };
  return { page: "not-found" };
}
