/** Types for bin/compiled.js (plain JavaScript: the entry shims load it before any TypeScript). */
export declare const SOURCE_DIRS: string[];
export declare const BUILD_DIR: string;
export declare function sourceDigest(root: string): string;
export declare function writeStamp(root: string): void;
export declare function compiledEntry(root: string, name: string): string | undefined;
