/**
 * The one module that reads `process.env`. Everything else receives values
 * through config objects built by `loadConfig`.
 */
export type EnvSnapshot = Readonly<Record<string, string | undefined>>;

export function readEnv(): EnvSnapshot {
  return Object.freeze({ ...process.env });
}

/** True when running under CI (the CI sets CI=true). */
export function isCi(env: EnvSnapshot = readEnv()): boolean {
  return env.CI === 'true' || env.CI === '1';
}
