// End to end in a real VS Code UI: code-server (VS Code in the browser) with the km-debug .vsix installed, driven
// by headless Chromium through puppeteer-core. Opens the workspace, starts its km launch configuration from the
// command palette, waits until the call stack shows main paused on entry, continues, and waits for the payload's
// output in the Debug Console. Run by tests/integration/test_dap_vscode_e2e.py with: E2E_URL (code-server page
// with ?folder=), E2E_CHROMIUM, E2E_SHOTS (a folder for screenshots), E2E_CONFIG (the launch configuration's
// name), E2E_OUTPUT (text the payload prints).
"use strict";
const puppeteer = require("puppeteer-core");

const env = process.env;
const TIMEOUT_MS = 60000;

async function textOf(page, selector) {
  return page.$$eval(selector, (nodes) => nodes.map((n) => n.textContent).join("\n"));
}

async function waitForText(page, selector, text, what) {
  try {
    await page.waitForFunction((sel, wanted) => [...document.querySelectorAll(sel)]
      .some((n) => n.textContent.includes(wanted)), { timeout: TIMEOUT_MS, polling: 250 }, selector, text);
  } catch (err) {
    await page.screenshot({ path: `${env.E2E_SHOTS}/failed-${what}.png` });
    throw new Error(`${what}: no "${text}" in ${selector}; saw: ${(await textOf(page, selector)).slice(0, 500)}`);
  }
}

async function runCommand(page, name) {
  // A command appears in the palette once its precondition holds (Start Debugging needs the extension host
  // to have registered the km debugger), so ask again until the deadline.
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    await page.keyboard.press("F1");
    await page.waitForSelector(".quick-input-widget .input", { visible: true, timeout: TIMEOUT_MS });
    await page.keyboard.type(name);                        // F1 opens the palette with ">" already typed
    const found = await page.waitForFunction((wanted) => [...document.querySelectorAll(
      ".quick-input-list .monaco-list-row")].some((n) => n.getAttribute("aria-label")?.startsWith(wanted)),
    { timeout: 3000, polling: 200 }, name).then(() => true, () => false);
    if (found) {
      await page.keyboard.press("Enter");
      return;
    }
    await page.keyboard.press("Escape");
    if (Date.now() > deadline) {
      await page.screenshot({ path: `${env.E2E_SHOTS}/failed-palette.png` });
      throw new Error(`command "${name}" never appeared in the palette`);
    }
  }
}

(async () => {
  const browser = await puppeteer.launch({
    executablePath: env.E2E_CHROMIUM, headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"],
    defaultViewport: { width: 1400, height: 900 },
  });
  try {
    const page = await browser.newPage();
    await page.goto(env.E2E_URL, { waitUntil: "domcontentloaded", timeout: TIMEOUT_MS });
    await page.waitForSelector(".monaco-workbench", { timeout: TIMEOUT_MS });
    await page.waitForSelector(".statusbar", { timeout: TIMEOUT_MS });
    await page.screenshot({ path: `${env.E2E_SHOTS}/1-workbench.png` });

    await runCommand(page, "Debug: Select and Start Debugging");
    await waitForText(page, ".quick-input-list .monaco-list-row", env.E2E_CONFIG, "configuration-picker");
    await page.keyboard.type(env.E2E_CONFIG);
    await page.keyboard.press("Enter");
    await waitForText(page, ".debug-call-stack", "main", "call-stack");
    await waitForText(page, ".monaco-workbench", "Paused on entry", "paused-on-entry");
    await page.screenshot({ path: `${env.E2E_SHOTS}/2-paused-on-entry.png` });

    await runCommand(page, "Debug: Continue");
    // The Debug Console opens with the session (internalConsoleOptions: openOnSessionStart).
    await waitForText(page, ".repl", env.E2E_OUTPUT, "debug-console");
    await page.screenshot({ path: `${env.E2E_SHOTS}/3-output.png` });
    console.log("e2e ok");
  } finally {
    await browser.close();
  }
})().catch((err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
