/**
 * Sign-in through an OpenID provider: the authorization code flow with PKCE
 * (RFC 7636) for a public client, as OAuth 2.0 for browser-based apps
 * recommends. The code verifier and state wait in sessionStorage during the
 * round trip to the provider; the code comes back in the address bar and is
 * removed from it as soon as it is read; the access token never is in a URL.
 */

const PENDING_KEY = "tenancy.console.oidc";

interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
}

interface Pending {
  state: string;
  verifier: string;
  tokenEndpoint: string;
  redirectUri: string;
  /** Where the person was when they signed in, to return there. */
  returnTo: string;
}

export interface OidcSettings {
  issuer: string;
  clientId: string;
  scopes: string;
}

export class SignInError extends Error {}

function base64Url(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(): string {
  return base64Url(crypto.getRandomValues(new Uint8Array(32)));
}

async function discover(issuer: string): Promise<Discovery> {
  const url = `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
  let response: Response;
  try {
    response = await fetch(url, { headers: { accept: "application/json" } });
  } catch {
    throw new SignInError(`The sign-in provider ${issuer} cannot be reached.`);
  }
  if (!response.ok) throw new SignInError(`The sign-in provider ${issuer} did not describe itself (HTTP ${response.status}).`);
  const document = (await response.json()) as Partial<Discovery>;
  // OpenID Connect Discovery §4.3: the document must be the issuer's own.
  if (document.issuer !== issuer || !document.authorization_endpoint || !document.token_endpoint) {
    throw new SignInError(`The sign-in provider's description does not match the configured issuer ${issuer}.`);
  }
  return document as Discovery;
}

function redirectUri(): string {
  return `${location.origin}/console/`;
}

/** Sends the browser to the provider; resolves only if that fails. */
export async function startSignIn(settings: OidcSettings, returnTo: string): Promise<void> {
  const discovery = await discover(settings.issuer);
  const verifier = randomString();
  const challenge = base64Url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  const pending: Pending = { state: randomString(), verifier, tokenEndpoint: discovery.token_endpoint, redirectUri: redirectUri(), returnTo };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(discovery.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: settings.clientId,
    redirect_uri: pending.redirectUri,
    scope: settings.scopes,
    state: pending.state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

/** True when the address is the provider's answer to a sign-in. */
export function isSignInResponse(): boolean {
  const params = new URLSearchParams(location.search);
  return params.has("state") && (params.has("code") || params.has("error"));
}

/**
 * Reads the provider's answer from the address bar, removes it from there,
 * and exchanges the code for an access token. Returns the token and the
 * console path to go back to.
 */
export async function completeSignIn(settings: OidcSettings): Promise<{ accessToken: string; returnTo: string }> {
  const params = new URLSearchParams(location.search);
  history.replaceState(null, "", location.pathname);
  const stored = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  const pending = stored ? (JSON.parse(stored) as Pending) : undefined;
  if (!pending || params.get("state") !== pending.state) {
    throw new SignInError("This sign-in answer was not expected by this tab (it may be old or from another tab). Sign in again.");
  }
  // RFC 9207: when the provider names itself, it must be the one we asked.
  const iss = params.get("iss");
  if (iss !== null && iss !== settings.issuer) throw new SignInError("The sign-in answer came from another provider than the configured one.");
  const error = params.get("error");
  if (error) {
    const description = params.get("error_description");
    throw new SignInError(`The sign-in provider refused: ${description || error}.`);
  }
  let response: Response;
  try {
    response = await fetch(pending.tokenEndpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: params.get("code") ?? "",
        redirect_uri: pending.redirectUri,
        client_id: settings.clientId,
        code_verifier: pending.verifier,
      }),
    });
  } catch {
    throw new SignInError("The sign-in provider's token endpoint cannot be reached (does it allow this origin through CORS?).");
  }
  const body = (await response.json().catch(() => ({}))) as { access_token?: unknown; error?: string; error_description?: string };
  if (!response.ok || typeof body.access_token !== "string") {
    throw new SignInError(`The sign-in provider did not issue a token: ${body.error_description || body.error || `HTTP ${response.status}`}.`);
  }
  return { accessToken: body.access_token, returnTo: pending.returnTo };
}
