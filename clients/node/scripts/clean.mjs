// Removes the previous build, so that a file deleted from gen/ or src/ does
// not linger in the published package.
import { rmSync } from "node:fs";
rmSync(new URL("../dist", import.meta.url), { recursive: true, force: true });
