import { chmod, mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { EdgemeterError } from "@edgemeter/shared";

/** Owner read/write only: private keys, and (to keep one rule) everything else we write. */
export const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

/**
 * Writes `contents` to `filePath` with mode 0600, atomically: a crash leaves either the old
 * file or the new one, never half a key. The mode is set on the temporary file before any
 * byte lands, so a key is never readable by others even for a moment, and is forced again
 * because `writeFile`'s mode is filtered by the umask.
 * @throws EdgemeterError `pki.io` when the file system refuses.
 */
export async function writePrivateFile(filePath: string, contents: string): Promise<void> {
  const temporaryPath = path.join(path.dirname(filePath), `.${path.basename(filePath)}.${process.pid}.tmp`);
  try {
    await mkdir(path.dirname(filePath), { recursive: true, mode: DIR_MODE });
    await writeFile(temporaryPath, contents, { mode: FILE_MODE, flag: "w" });
    await chmod(temporaryPath, FILE_MODE);
    await rename(temporaryPath, filePath);
  } catch (error) {
    throw new EdgemeterError("pki.io", `${filePath}: cannot write: ${(error as Error).message}`, {
      cause: error,
      context: { filePath },
    });
  }
}
