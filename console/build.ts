/**
 * Builds the admin console (Vite) into console/dist, writes a Brotli and a
 * gzip copy of every text file for the service to serve as they are, and
 * prints what a first visit downloads.
 *
 *   tsx console/build.ts [--out DIR] [--max-first-load-kb N] [--quiet]
 *
 * With --max-first-load-kb it fails when the JavaScript of the first load,
 * gzip-compressed, is larger (.ci/run checks the limit this way).
 */
import { readFile, writeFile, readdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { build } from "vite";

const consoleDir = path.dirname(fileURLToPath(import.meta.url));

export interface SizeReport {
  /** JavaScript fetched before the console can render: the entry chunk and everything it imports statically. */
  firstLoadJs: { files: string[]; bytes: number; gzip: number; brotli: number };
  /** Every JavaScript file of the build, including chunks loaded later. */
  allJs: { bytes: number; gzip: number };
}

interface ManifestChunk {
  file: string;
  isEntry?: boolean;
  imports?: string[];
}

const COMPRESSIBLE = /\.(js|css|html|svg|json|webmanifest)$/;

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await listFiles(path.join(dir, entry.name), rel)));
    else out.push(rel);
  }
  return out;
}

export async function buildConsole(options: { outDir?: string; quiet?: boolean } = {}): Promise<SizeReport> {
  const outDir = path.resolve(options.outDir ?? path.join(consoleDir, "dist"));
  await build({
    configFile: path.join(consoleDir, "vite.config.ts"),
    logLevel: options.quiet ? "error" : "warn",
    build: { outDir },
  });

  const sizes = new Map<string, { bytes: number; gzip: number; brotli: number }>();
  for (const rel of await listFiles(outDir)) {
    if (!COMPRESSIBLE.test(rel) || rel.startsWith(".vite/")) continue;
    const full = path.join(outDir, rel);
    const content = await readFile(full);
    const gzip = gzipSync(content, { level: 9 });
    const brotli = brotliCompressSync(content, {
      params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: content.length },
    });
    await writeFile(`${full}.gz`, gzip);
    await writeFile(`${full}.br`, brotli);
    sizes.set(rel, { bytes: content.length, gzip: gzip.length, brotli: brotli.length });
  }

  const manifest = JSON.parse(await readFile(path.join(outDir, ".vite", "manifest.json"), "utf8")) as Record<string, ManifestChunk>;
  const firstLoad = new Set<string>();
  const visit = (key: string) => {
    const chunk = manifest[key];
    if (!chunk || firstLoad.has(chunk.file)) return;
    firstLoad.add(chunk.file);
    for (const imported of chunk.imports ?? []) visit(imported);
  };
  for (const [key, chunk] of Object.entries(manifest)) if (chunk.isEntry) visit(key);

  const sum = (files: Iterable<string>, field: "bytes" | "gzip" | "brotli") =>
    [...files].reduce((total, file) => total + (sizes.get(file)?.[field] ?? 0), 0);
  const jsFiles = [...sizes.keys()].filter((file) => file.endsWith(".js"));
  const report: SizeReport = {
    firstLoadJs: { files: [...firstLoad], bytes: sum(firstLoad, "bytes"), gzip: sum(firstLoad, "gzip"), brotli: sum(firstLoad, "brotli") },
    allJs: { bytes: sum(jsFiles, "bytes"), gzip: sum(jsFiles, "gzip") },
  };
  await writeFile(path.join(outDir, "size.json"), JSON.stringify(report, null, 2) + "\n");
  return report;
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;

async function main(argv: string[]): Promise<number> {
  const option = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const limitKb = option("--max-first-load-kb");
  const report = await buildConsole({ outDir: option("--out"), quiet: argv.includes("--quiet") });
  const { firstLoadJs, allJs } = report;
  process.stdout.write(
    `console: first load ${kb(firstLoadJs.gzip)} of JavaScript gzip-compressed (${kb(firstLoadJs.brotli)} brotli, ` +
      `${kb(firstLoadJs.bytes)} uncompressed) in ${firstLoadJs.files.join(", ")}; all JavaScript ${kb(allJs.gzip)} gzip\n`,
  );
  if (limitKb !== undefined) {
    const limit = Number(limitKb) * 1024;
    if (!(limit > 0)) throw new Error(`--max-first-load-kb must be a positive number, got "${limitKb}"`);
    if (firstLoadJs.gzip > limit) {
      process.stderr.write(`console: the first load's JavaScript (${kb(firstLoadJs.gzip)} gzip) is over the limit of ${kb(limit)}\n`);
      return 1;
    }
    process.stdout.write(`console: within the limit of ${kb(limit)}\n`);
  }
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`console build failed: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    },
  );
}
