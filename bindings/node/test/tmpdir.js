'use strict';
// The tests' temporary directories, removed when the test file's process exits
// (`node --test` runs each file in a process of its own; it also runs this file, which
// has no tests). Caches left open by a failing test are removed too: nothing they
// write after that matters.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const made = [];
process.on('exit', () => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true, maxRetries: 2 });
});

/** A new directory in the system's temporary directory, named PREFIX and 6 characters. */
function tmpDir(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

module.exports = { tmpDir };
