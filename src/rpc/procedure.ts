const procedures = new WeakMap<object, string>();

/** `package.Service/Method`, computed once per method (it labels every RPC's log line and metrics). */
export function procedureOf(method: { parent: { typeName: string }; name: string }): string {
  let procedure = procedures.get(method);
  if (procedure === undefined) procedures.set(method, (procedure = `${method.parent.typeName}/${method.name}`));
  return procedure;
}
