/**
 * Waits until `condition` holds, checking every `intervalMs`; fails with
 * `what` if it does not within `timeoutMs`. For tests that would otherwise
 * sleep a fixed time and hope.
 */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what = "condition",
  { timeoutMs = 5_000, intervalMs = 10 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`${what}: not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
