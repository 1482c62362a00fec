/** `stormd`: the hypervisor agent's composition root. */
import { VERSION } from '../lib/version.ts';

const USAGE = `stormd ${VERSION}: the STORM hypervisor agent

Usage:
  stormd start --state DIR --listen HOST:PORT   serve the manager over mutual-TLS XML-RPC
  stormd join --manager URL --token TOKEN       enrol with a manager (one-time token)
  stormd --version | --help
`;

const argv = process.argv.slice(2);
if (argv.includes('--version')) process.stdout.write(`stormd ${VERSION}\n`);
else if (argv.length === 0 || argv.includes('--help') || argv[0] === 'help') process.stdout.write(USAGE);
else {
  process.stderr.write(`error: unknown command "${argv[0]}"\n  hint: run stormd --help\n`);
  process.exitCode = 2;
}
