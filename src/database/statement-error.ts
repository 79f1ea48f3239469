/**
 * Whether a failed statement was refused by PostgreSQL for what it asked
 * (a SQLSTATE outside the connection and operator-intervention classes 08
 * and 57), so that running its rows again one by one gives each its own
 * answer. After any other failure (a lost connection, a cancelled statement)
 * the outcome is unknown or shared, and is reported as it is.
 */
export function isRefusedStatement(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith("08") && !code.startsWith("57");
}
