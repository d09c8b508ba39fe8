#!/usr/bin/env node
/**
 * The `viommu` command line.
 */
import { ViommuError } from '../errors.js';
import { CliError } from './args.js';
import { PGTABLE_HELP, runPgtable } from './pgtable-cmd.js';
import { REPLAY_HELP, runReplay } from './replay-cmd.js';
import { FIRMWARE_HELP, runFirmware } from './firmware-cmd.js';

const HELP = `viommu — virtual IOMMUs, their page tables and firmware, as a lab, a library and a checker

Usage: viommu <command> [options]

Commands:
  pgtable    build an IO page table (VT-d second-stage, x86 first-stage, Arm LPAE S1/S2) in simulated
             memory and walk it as the hardware does
  replay-trace  replay a QEMU virtio-iommu trace of a real guest against viommu's virtio-iommu and
             compare every request and translation
  firmware   write ACPI VIOT/DMAR/IORT and a device tree for a machine description, or decode one
  demo       both of the first two on built-in examples (what \`npm start\` runs)
  help [cmd] this text, or a command's options

Run 'viommu <command> --help' for a command's options.`;

const COMMANDS: Record<string, { help: string; run: (argv: string[]) => string }> = {
  pgtable: { help: PGTABLE_HELP, run: runPgtable },
  'replay-trace': { help: REPLAY_HELP, run: runReplay },
  firmware: { help: FIRMWARE_HELP, run: runFirmware },
  demo: {
    help: 'viommu demo\n\nBuild and walk an example page table, then replay the bundled real-guest virtio-iommu trace.',
    run: () => ['== viommu pgtable ==', runPgtable([]), '', '== viommu replay-trace ==', runReplay([])].join('\n'),
  },
};

export function main(argv: string[]): number {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    const topic = cmd === 'help' ? rest[0] : undefined;
    process.stdout.write(`${topic && COMMANDS[topic] ? COMMANDS[topic].help : HELP}\n`);
    return 0;
  }
  const command = COMMANDS[cmd];
  if (!command) {
    process.stderr.write(`viommu: unknown command '${cmd}'\n\n${HELP}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.help}\n`);
    return 0;
  }
  try {
    process.stdout.write(`${command.run(rest)}\n`);
    return 0;
  } catch (e) {
    if (e instanceof CliError) {
      process.stderr.write(`viommu ${cmd}: ${e.message}\n\n${command.help}\n`);
      return 2;
    }
    if (e instanceof ViommuError) {
      process.stderr.write(`viommu ${cmd}: ${e.code}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

process.exitCode = main(process.argv.slice(2));
