// `npm run docs:config`: builds, then writes docs/configuration.md from the zod schemas of the
// dispatcher configuration and the run document, and packaging/dispatcher.example.json (its
// dispatcher example, which the Debian package installs) (the generator is
// packages/dispatcher/src/docs/config-doc.ts; its test fails when the file on disk is out of date).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, root } from './setup.mjs';

build();
// Imported after the build, so that it is the generator just built.
const { renderConfigurationDoc, renderExampleConfig } = await import(pathToFileURL(join(root, 'packages', 'dispatcher', 'dist', 'docs', 'config-doc.js')).href);
mkdirSync(join(root, 'docs'), { recursive: true });
writeFileSync(join(root, 'docs', 'configuration.md'), renderConfigurationDoc());
writeFileSync(join(root, 'packaging', 'dispatcher.example.json'), renderExampleConfig());
console.log('> wrote docs/configuration.md and packaging/dispatcher.example.json');
