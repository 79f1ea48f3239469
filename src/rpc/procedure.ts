const procedures = new WeakMap<object, string>();

/**
 * `package.Service/Method`, computed once per method: the one spelling of a
 * procedure that labels log lines and metrics and keys the access policy.
 */
export function procedureOf(method: { parent: { typeName: string }; name: string }): string {
  let procedure = procedures.get(method);
  if (procedure === undefined) procedures.set(method, (procedure = `${method.parent.typeName}/${method.name}`));
  return procedure;
}
