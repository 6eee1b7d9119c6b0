// kdbg-dap driven by Microsoft's DAP test client (@vscode/debugadapter-testsupport), as VS Code would drive it.
// Run by tests/integration/test_dap_vscode.py, which starts `kdbg-dap --port` and passes, in the environment:
// KM_DAP_PORT, KM_DAP_PROGRAM (dap_basic.km), KM_DAP_SOURCE (dap_basic.c), KM_DAP_KMPATH (JSON),
// KM_DAP_BP_LINE (@add_body) and KM_DAP_ENTRY_LINE (first line of main).
"use strict";
const { test } = require("node:test");
const assert = require("node:assert");
const { DebugClient } = require("@vscode/debugadapter-testsupport");

const env = process.env;
const launchArgs = { program: env.KM_DAP_PROGRAM, kmPath: JSON.parse(env.KM_DAP_KMPATH || "\"km\"") };

async function withClient(body) {
  const dc = new DebugClient("node", "unused", "km");
  dc.defaultTimeout = 20000;
  await dc.start(Number(env.KM_DAP_PORT));
  try {
    await body(dc);
  } finally {
    await dc.stop();
  }
}

test("initialize reports the km capabilities", () => withClient(async (dc) => {
  const response = await dc.initializeRequest();
  assert.ok(response.body.supportsConfigurationDoneRequest);
  assert.ok(response.body.supportsDisassembleRequest);
  assert.ok(response.body.exceptionBreakpointFilters.some((f) => f.filter === "SIGSEGV"));
}));

test("launch with stopOnEntry stops in main", () => withClient(async (dc) => {
  await Promise.all([
    dc.configurationSequence(),
    dc.launch({ ...launchArgs, stopOnEntry: true }),
    dc.assertStoppedLocation("entry", { path: env.KM_DAP_SOURCE, line: Number(env.KM_DAP_ENTRY_LINE) }),
  ]);
}));

test("a source breakpoint is hit, then the payload runs to its exit code", () => withClient(async (dc) => {
  await dc.hitBreakpoint(launchArgs, { path: env.KM_DAP_SOURCE, line: Number(env.KM_DAP_BP_LINE) });
  const trace = await dc.stackTraceRequest({ threadId: 1 });
  assert.deepStrictEqual(trace.body.stackFrames.map((f) => f.name), ["add", "main"]);
  const [, exited] = await Promise.all([
    dc.continueRequest({ threadId: 1 }),
    dc.waitForEvent("exited"),
    dc.assertOutput("stdout", "answer=42 total=7"),
  ]);
  assert.strictEqual(exited.body.exitCode, 7);
}));
