import { useMutation } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { TenantService } from "../../../gen/tenancy/v1/tenant_pb.js";
import { fieldErrors, fieldsUnder, problemOf, type Problem } from "../errors.js";
import { parseJsonText, type JsonValue } from "../json-text.js";
import { ParamsEditor } from "../params-editor.js";
import { Link, navigate } from "../router.js";
import { FormError, PageHeading, TextField } from "../ui.js";

/** Parses the editor's text as params, or says why it cannot be sent. */
export function paramsFromText(text: string): { params: { [key: string]: JsonValue } } | { error: string } {
  const parsed = parseJsonText(text);
  if (!parsed.ok) return { error: "Params are not valid JSON: see the marked line." };
  if (parsed.value === null || typeof parsed.value !== "object" || Array.isArray(parsed.value)) return { error: "Params must be a JSON object." };
  return { params: parsed.value };
}

export function NewTenantPage() {
  const [name, setName] = useState("");
  const [domain, setDomain] = useState("");
  const [params, setParams] = useState("{}");
  const [localError, setLocalError] = useState<string>();
  const [problem, setProblem] = useState<Problem>();
  // One id per form (AIP-155): sending it twice, after a lost answer, creates one tenant.
  const [requestId] = useState(() => crypto.randomUUID());
  const create = useMutation(TenantService.method.createTenant);
  const queryClient = useQueryClient();

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const parsed = paramsFromText(params);
    if ("error" in parsed) {
      setLocalError(parsed.error);
      return;
    }
    setLocalError(undefined);
    setProblem(undefined);
    create.mutate(
      { tenant: { name, domain, params: parsed.params }, requestId },
      {
        onSuccess: (tenant) => {
          void queryClient.invalidateQueries({ queryKey: ["connect-query"] });
          navigate(`/tenants/${tenant.id}`);
        },
        onError: (error) => setProblem(problemOf(error)),
      },
    );
  };

  return (
    <>
      <p className="breadcrumb">
        <Link to="/">Tenants</Link>
      </p>
      <PageHeading title="New tenant">New tenant</PageHeading>
      <form onSubmit={submit} className="form" noValidate>
        <FormError problem={problem} placed={["tenant.name", "tenant.domain", "tenant.params"]} local={localError} />
        <TextField
          label="Name"
          value={name}
          onChange={(e) => setName(e.target.value)}
          required
          autoComplete="off"
          errors={[...fieldErrors(problem, "tenant.name"), ...(problem?.reason === "TENANT_NAME_TAKEN" ? ["This name is taken."] : [])]}
        />
        <TextField
          label="Domain"
          hint="The host name its requests arrive on, such as acme.example.com."
          value={domain}
          onChange={(e) => setDomain(e.target.value)}
          required
          autoComplete="off"
          autoCapitalize="off"
          spellCheck={false}
          errors={[...fieldErrors(problem, "tenant.domain"), ...(problem?.reason === "TENANT_DOMAIN_TAKEN" ? ["This domain is taken."] : [])]}
        />
        <ParamsEditor value={params} onChange={setParams} violations={fieldsUnder(problem, "tenant.params")} showSyntaxError={localError !== undefined} />
        <div className="actions">
          <button type="submit" className="primary" disabled={create.isPending}>
            {create.isPending ? "Creating…" : "Create tenant"}
          </button>
          <Link to="/" className="button">
            Cancel
          </Link>
        </div>
      </form>
    </>
  );
}
