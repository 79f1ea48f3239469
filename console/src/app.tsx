import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { TransportProvider } from "@connectrpc/connect-query";
import { createConnectTransport } from "@connectrpc/connect-web";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { useEffect, useMemo, useRef, useState } from "react";
import { SessionContext, useSession, type SessionContextValue } from "./access.js";
import { completeSignIn, isSignInResponse } from "./oidc.js";
import { NewTenantPage } from "./pages/new-tenant.js";
import { SignInPage } from "./pages/sign-in.js";
import { TenantPage } from "./pages/tenant.js";
import { TenantsPage } from "./pages/tenants.js";
import { Link, match, navigate, useLocation } from "./router.js";
import { forgetToken, loadConfig, OPEN_ACCESS, storedIdentity, storeToken, type ConsoleConfig, type Identity } from "./session.js";
import { Loading, PageHeading } from "./ui.js";

type Boot = { state: "loading" } | { state: "failed"; message: string } | { state: "ready"; config: ConsoleConfig };

export function App() {
  const [boot, setBoot] = useState<Boot>({ state: "loading" });
  const [identity, setIdentity] = useState<Identity | undefined>();
  const [signInReason, setSignInReason] = useState<string>();

  useEffect(() => {
    (async () => {
      const config = await loadConfig();
      if (config.authMode === "none") {
        setIdentity(OPEN_ACCESS);
      } else if (config.oidc && isSignInResponse()) {
        try {
          const { accessToken, returnTo } = await completeSignIn(config.oidc);
          setIdentity(storeToken(accessToken));
          navigate(returnTo, { replace: true });
        } catch (error) {
          setSignInReason(error instanceof Error ? error.message : String(error));
        }
      } else {
        setIdentity(storedIdentity());
      }
      setBoot({ state: "ready", config });
    })().catch((error: unknown) => setBoot({ state: "failed", message: error instanceof Error ? error.message : String(error) }));
  }, []);

  const session = useMemo<SessionContextValue | undefined>(() => {
    if (!identity || boot.state !== "ready") return undefined;
    return {
      identity,
      signOut:
        boot.config.authMode === "jwt"
          ? (reason?: string) => {
              forgetToken();
              setSignInReason(reason);
              setIdentity(undefined);
            }
          : undefined,
    };
  }, [identity, boot]);

  if (boot.state === "loading") return <Loading what="the console" />;
  if (boot.state === "failed") {
    return (
      <main id="main">
        <div className="banner banner-error" role="alert">
          <p>The console cannot start: {boot.message}</p>
        </div>
      </main>
    );
  }
  if (!session) {
    return (
      <SignInPage
        oidc={boot.config.oidc}
        reason={signInReason}
        onSignedIn={(signedIn) => {
          setSignInReason(undefined);
          setIdentity(signedIn);
        }}
      />
    );
  }
  return (
    <SessionContext.Provider value={session}>
      <Connected />
    </SessionContext.Provider>
  );
}

/** The transport and query cache of one signed-in session. */
function Connected() {
  const session = useSession();
  const signOut = useRef(session.signOut);
  signOut.current = session.signOut;
  const { transport, queryClient } = useMemo(() => {
    const token = session.identity.token;
    const credentials: Interceptor = (next) => async (req) => {
      if (token) req.header.set("authorization", `Bearer ${token}`);
      try {
        return await next(req);
      } catch (error) {
        if (error instanceof ConnectError && error.code === Code.Unauthenticated) {
          signOut.current?.("The service did not accept your sign-in (it may have expired): sign in again.");
        }
        throw error;
      }
    };
    return {
      transport: createConnectTransport({ baseUrl: location.origin, interceptors: [credentials] }),
      queryClient: new QueryClient({ defaultOptions: { queries: { staleTime: 5_000, refetchOnWindowFocus: true } } }),
    };
  }, [session.identity.token]);

  // Sign out when the token expires, rather than at the next refused call.
  useEffect(() => {
    const expiresAt = session.identity.expiresAt;
    if (!expiresAt || !signOut.current) return;
    const timer = setTimeout(() => signOut.current?.("Your sign-in expired: sign in again."), Math.max(0, expiresAt.getTime() - Date.now()));
    return () => clearTimeout(timer);
  }, [session.identity.expiresAt]);

  return (
    <TransportProvider transport={transport}>
      <QueryClientProvider client={queryClient}>
        <Shell />
      </QueryClientProvider>
    </TransportProvider>
  );
}

function Shell() {
  const { identity, signOut } = useSession();
  const { path } = useLocation();
  const route = match(path);
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link to="/" className="brand">
          tenancy
        </Link>
        <nav aria-label="Main">
          <Link to="/" aria-current={route.page === "tenants" ? "page" : undefined}>
            Tenants
          </Link>
        </nav>
        <div className="who">
          <span>
            {identity.token === undefined
              ? "No sign-in (AUTH_MODE=none)"
              : `${identity.userId}${identity.platformAdmin ? " · platform administrator" : ""}`}
          </span>
          {signOut && (
            <button type="button" onClick={() => signOut("You signed out.")}>
              Sign out
            </button>
          )}
        </div>
      </header>
      <main id="main">
        {route.page === "tenants" && <TenantsPage />}
        {route.page === "new-tenant" && (identity.platformAdmin ? <NewTenantPage /> : <NotAllowed />)}
        {route.page === "tenant" && <TenantPage key={route.id} id={route.id} tab={route.tab} />}
        {route.page === "not-found" && (
          <>
            <PageHeading title="Not found">Page not found</PageHeading>
            <p>
              <Link to="/">Go to the tenants</Link>
            </p>
          </>
        )}
      </main>
    </>
  );
}

function NotAllowed() {
  return (
    <>
      <PageHeading title="Not allowed">Not allowed</PageHeading>
      <p>Only platform administrators create tenants.</p>
    </>
  );
}
