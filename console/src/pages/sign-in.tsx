import { useId, useState, type FormEvent } from "react";
import { startSignIn, type OidcSettings } from "../oidc.js";
import { currentPath } from "../router.js";
import { storeToken, TokenFormatError, type Identity } from "../session.js";
import { PageHeading } from "../ui.js";

/**
 * Sign-in under AUTH_MODE=jwt: through the configured OpenID provider, or by
 * pasting a bearer token (from `npm run token`, or the identity provider).
 */
export function SignInPage({ oidc, reason, onSignedIn }: { oidc: OidcSettings | undefined; reason: string | undefined; onSignedIn: (identity: Identity) => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string>();
  const [redirecting, setRedirecting] = useState(false);
  const id = useId();

  const submit = (event: FormEvent) => {
    event.preventDefault();
    try {
      onSignedIn(storeToken(token));
    } catch (e) {
      setError(e instanceof TokenFormatError ? e.message : "This token cannot be used.");
    }
  };

  const withProvider = async () => {
    setError(undefined);
    setRedirecting(true);
    try {
      await startSignIn(oidc!, currentPath());
    } catch (e) {
      setRedirecting(false);
      setError(e instanceof Error ? e.message : String(e));
    }
  };

  return (
    <main className="sign-in" id="main">
      <PageHeading title="Sign in">Sign in to the tenancy console</PageHeading>
      {reason && (
        <div className="banner banner-info" role="status">
          <p>{reason}</p>
        </div>
      )}
      {error && (
        <div className="banner banner-error" role="alert">
          <p>{error}</p>
        </div>
      )}
      {oidc && (
        <section className="form" aria-labelledby={`${id}-oidc`}>
          <h2 id={`${id}-oidc`}>With your organization's account</h2>
          <button type="button" className="primary" onClick={withProvider} disabled={redirecting}>
            {redirecting ? "Going to the sign-in page…" : `Sign in with ${new URL(oidc.issuer).host}`}
          </button>
        </section>
      )}
      <form className="form" onSubmit={submit} aria-labelledby={`${id}-token`}>
        <h2 id={`${id}-token`}>{oidc ? "Or with a bearer token" : "With a bearer token"}</h2>
        <div className="field">
          <label htmlFor={`${id}-input`}>Bearer token</label>
          <p className="hint" id={`${id}-hint`}>
            A JWT the service accepts: from your identity provider, or <code>npm run token -- --admin</code> in development. It is kept in this tab only, until you sign out
            or close it.
          </p>
          <textarea
            id={`${id}-input`}
            value={token}
            onChange={(e) => setToken(e.target.value)}
            rows={4}
            spellCheck={false}
            autoCapitalize="off"
            autoComplete="off"
            aria-describedby={`${id}-hint`}
            required
          />
        </div>
        <div className="actions">
          <button type="submit" className={oidc ? undefined : "primary"}>
            Sign in
          </button>
        </div>
      </form>
    </main>
  );
}
