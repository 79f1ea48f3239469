export { FilterError } from "./filter.lexer.js";
export { compileTenantFilter, type CompiledFilter } from "./filter.sql.js";
