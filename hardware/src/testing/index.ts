export { type PtyPair, socatBinary, startPtyPair } from "./ptyPair.js";
