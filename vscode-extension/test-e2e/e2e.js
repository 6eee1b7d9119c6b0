// End to end in a real VS Code UI: code-server (VS Code in the browser) with the km-debug .vsix, driven by Debian's
// headless Chromium through puppeteer-core. Meant to run as the first process of a fresh pid + net namespace
// (tests/integration/test_dap_vscode_e2e.py starts it under `unshare --net --pid --fork --mount-proc`), so it
// starts code-server itself and everything it, Chromium and km spawn dies with it.
// Steps: install the .vsix, serve the workspace, open the source, toggle a breakpoint with F9 on a line, press F5
// (the workspace's launch.json, type km), check in the DOM that the debug toolbar shows a paused session, the CALL
// STACK lists the function and the VARIABLES view a local with its value; continue (F5) and wait for the
// payload's output in the Debug Console. With E2E_STEP_LINE, Step Over (F10) before that: the CALL STACK shows the
// function at that line and VARIABLES E2E_STEP_LOCAL = E2E_STEP_VALUE; with E2E_RUNNING, another thread shows
// Running in the CALL STACK beside the paused one (gdb's non-stop mode). A screenshot of each step goes to E2E_SHOTS.
// Environment: E2E_CODE_SERVER, E2E_VSIX, E2E_EXTENSIONS, E2E_DATA (user-data dir), E2E_WORKSPACE, E2E_LOG
// (code-server's output), E2E_CHROMIUM, E2E_SHOTS, E2E_SOURCE (absolute path), E2E_LINE, E2E_FUNCTION,
// E2E_LOCAL, E2E_VALUE (optional), E2E_OUTPUT, E2E_EXCEPTION_FILTER (optional: a filter the BREAKPOINTS view must
// list), E2E_SESSION (optional: the stop is in a second session, whose name in CALL STACK holds this text;
// E2E_CONSOLE then names the launch's session, whose Debug Console gets the output),
// E2E_STEP_LINE, E2E_STEP_LOCAL, E2E_STEP_VALUE, E2E_RUNNING (optional).
"use strict";
const childProcess = require("child_process");
const fs = require("fs");
const puppeteer = require("puppeteer-core");

const env = process.env;
const TIMEOUT_MS = 60000;
const PORT = 8080;                      // a fresh net namespace: nothing else listens here

function log(message) {
  console.log(`${(process.uptime()).toFixed(1)}s ${message}`);
}

async function shoot(page, name) {
  await page.screenshot({ path: `${env.E2E_SHOTS}/${name}.png` });
}

async function toastsOf(page) {
  return page.$$eval(".notifications-toasts .notification-list-item-message", (nodes) => nodes.map((n) => n.innerText));
}

async function textOf(page, selector) {
  return page.$$eval(selector, (nodes) => nodes.map((n) => n.innerText).join("\n"));
}

// Waits until fn(...args) holds in the page; on timeout keeps a screenshot and says what the selector held.
async function waitUntil(page, what, selector, fn, ...args) {
  try {
    await page.waitForFunction(fn, { timeout: TIMEOUT_MS, polling: 250 }, ...args);
  } catch (err) {
    await shoot(page, `failed-${what}`);
    throw new Error(`${what}: not seen in ${TIMEOUT_MS} ms; ${selector} held: ` +
                    JSON.stringify((await textOf(page, selector)).slice(0, 800)));
  }
}

async function waitForText(page, selector, text, what) {
  await waitUntil(page, what, selector, (sel, wanted) => [...document.querySelectorAll(sel)]
    .some((n) => n.innerText.includes(wanted)), selector, text);
}

// A thread's state in the CALL STACK view ("Paused on breakpoint", "Running"), which CSS draws in capitals.
async function waitForThreadState(page, state, what) {
  await waitUntil(page, what, ".debug-call-stack", (wanted) => [...document.querySelectorAll(
    ".debug-call-stack .monaco-list-row")].some((n) => n.textContent.toLowerCase().includes(wanted)),
  state.toLowerCase());
}

// Types into the quick-open box (F1 opens it with ">"; without the ">" it opens files and goes to lines) and
// accepts the row whose aria-label starts with `row` (null: just Enter). A command only shows once its precondition holds, so ask
// again until the deadline.
async function quickOpen(page, typed, row) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    await page.keyboard.press("F1");
    await page.waitForSelector(".quick-input-widget .input", { visible: true, timeout: TIMEOUT_MS });
    if (!typed.startsWith(">")) await page.keyboard.press("Backspace");
    await page.keyboard.type(typed.replace(/^>/, ""));
    if (row === null) {                                      // ":LINE" goes to the line on Enter
      await page.keyboard.press("Enter");
      return;
    }
    const found = await page.waitForFunction((wanted) => [...document.querySelectorAll(
      ".quick-input-list .monaco-list-row")].some((n) => n.getAttribute("aria-label")?.startsWith(wanted)),
    { timeout: 3000, polling: 200 }, row).then(() => true, () => false);
    if (found) {
      await page.keyboard.press("Enter");
      return;
    }
    await page.keyboard.press("Escape");
    if (Date.now() > deadline) {
      await shoot(page, "failed-quick-open");
      throw new Error(`quick open: "${typed}" never offered "${row}"`);
    }
  }
}

function startCodeServer() {
  const config = `${env.E2E_DATA}/config.yaml`;        // else it writes one into ~/.config/code-server
  childProcess.execFileSync(env.E2E_CODE_SERVER, ["--config", config, "--extensions-dir", env.E2E_EXTENSIONS, "--user-data-dir",
    env.E2E_DATA, "--install-extension", env.E2E_VSIX], { stdio: ["ignore", "pipe", "pipe"], timeout: TIMEOUT_MS });
  const out = fs.openSync(env.E2E_LOG, "w");
  childProcess.spawn(env.E2E_CODE_SERVER, ["--config", config, "--auth", "none", "--bind-addr", `127.0.0.1:${PORT}`,
    "--user-data-dir", env.E2E_DATA, "--extensions-dir", env.E2E_EXTENSIONS, "--disable-telemetry",
    "--disable-update-check", env.E2E_WORKSPACE], { stdio: ["ignore", out, out] });
  const deadline = Date.now() + TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      if (fs.readFileSync(env.E2E_LOG, "utf8").includes("HTTP server listening")) {
        clearInterval(poll);
        resolve(`http://127.0.0.1:${PORT}/?folder=${encodeURIComponent(env.E2E_WORKSPACE)}`);
      } else if (Date.now() > deadline) {
        clearInterval(poll);
        reject(new Error("code-server did not start listening"));
      }
    }, 100);
  });
}

async function main() {
  log(`pid namespace ${fs.readlinkSync("/proc/self/ns/pid")}`);  // the test checks that nothing is left in it
  const url = await startCodeServer();
  log(`code-server up: ${url}`);
  const browser = await puppeteer.launch({
    executablePath: env.E2E_CHROMIUM, headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"],
    defaultViewport: { width: 1400, height: 900 },
  });
  const page = await browser.newPage();
  await page.goto(url, { waitUntil: "domcontentloaded", timeout: TIMEOUT_MS });
  await page.waitForSelector(".monaco-workbench .statusbar", { timeout: TIMEOUT_MS });
  await shoot(page, "1-workbench");
  log("workbench shown");

  const file = env.E2E_SOURCE.split("/").pop();
  await quickOpen(page, env.E2E_SOURCE, file);
  await waitForText(page, ".tabs-container .tab.active", file, "editor-open");
  await page.waitForSelector(".monaco-editor .view-lines", { visible: true, timeout: TIMEOUT_MS });
  await quickOpen(page, `:${env.E2E_LINE}`, null);
  // The cursor is on the line once the status bar says so; then F9 toggles a breakpoint there.
  await waitForText(page, ".statusbar", `Ln ${env.E2E_LINE},`, "go-to-line");
  // F9 does nothing until the extension host has registered the km debugger (the `debuggersAvailable` context),
  // so press it again while no breakpoint shows, checking that the glyph stands beside the line's number.
  const breakpointShown = (line) => {
    const glyph = document.querySelector(".monaco-editor .margin .codicon-debug-breakpoint");
    if (!glyph) return false;
    const top = glyph.getBoundingClientRect().top;
    return [...document.querySelectorAll(".monaco-editor .margin .line-numbers")]
      .some((n) => n.textContent.trim() === line && Math.abs(n.getBoundingClientRect().top - top) < 3);
  };
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    await page.keyboard.press("F9");
    const shown = await page.waitForFunction(breakpointShown, { timeout: 3000, polling: 200 }, env.E2E_LINE)
      .then(() => true, () => false);
    if (shown) break;
    if (Date.now() > deadline || await page.$(".monaco-editor .margin .codicon-debug-breakpoint")) {
      await shoot(page, "failed-breakpoint");
      throw new Error(`no breakpoint glyph beside line ${env.E2E_LINE} after F9`);
    }
  }
  await shoot(page, "2-breakpoint");
  log(`breakpoint on line ${env.E2E_LINE}`);

  await page.keyboard.press("F5");
  // Paused: the floating debug toolbar offers Continue (it offers Pause while running).
  await waitUntil(page, "toolbar-paused", ".debug-toolbar", () => [...document.querySelectorAll(
    ".debug-toolbar .action-label")].some((n) => n.classList.contains("codicon-debug-continue")));
  const frameAt = (what, line) => waitUntil(page, what, ".debug-call-stack", (fn, at) => [...document.querySelectorAll(
    ".debug-call-stack .monaco-list-row .stack-frame")].some((n) =>
    n.querySelector(".label")?.textContent.trim() === fn &&
    (n.querySelector(".line-number")?.textContent || "").trim().startsWith(`${at}:`)), env.E2E_FUNCTION, line);
  const variableIs = (what, local, value) => waitUntil(page, what, ".debug-variables", (name, wanted) => [
    ...document.querySelectorAll(".debug-variables .monaco-list-row")].some((n) =>  // "sum =" (or "sum:"), the value
    (n.querySelector(".name")?.textContent || "").replace(/\s*[:=]\s*$/, "").trim() === name &&
    n.querySelector(".value")?.textContent.trim() === wanted), local, value);
  await frameAt("call-stack", env.E2E_LINE);
  if (env.E2E_LOCAL) await variableIs("variables", env.E2E_LOCAL, env.E2E_VALUE);
  if (env.E2E_SESSION) {
    // Two sessions (a launch and the session its forked child opened through startDebugging): the CALL STACK
    // lists both, and the state stands beside the paused one (in capitals: CSS, so innerText is upper case).
    await waitForText(page, ".debug-call-stack", env.E2E_SESSION, "second-session");
    await waitForThreadState(page, "Paused on breakpoint", "paused-on-breakpoint");
  } else if (env.E2E_RUNNING) {
    // Several threads: VS Code writes each one's state in its row.
    await waitForThreadState(page, "Paused on breakpoint", "paused-on-breakpoint");
    await waitForThreadState(page, "Running", "another-thread-running");
  } else {
    // One thread: VS Code writes its state in the CALL STACK view's header.
    await waitForText(page, ".pane-header", "Paused on breakpoint", "paused-on-breakpoint");
  }
  // The BREAKPOINTS view lists the adapter's exception filters (VS Code reads them from `initialize` only).
  if (env.E2E_EXCEPTION_FILTER) {
    await waitForText(page, ".part.sidebar", env.E2E_EXCEPTION_FILTER, "exception-filter");
  }
  await shoot(page, "3-paused-at-breakpoint");
  log(`paused in ${env.E2E_FUNCTION} at line ${env.E2E_LINE}` +
      (env.E2E_LOCAL ? `, ${env.E2E_LOCAL} = ${env.E2E_VALUE}` : "") + (env.E2E_RUNNING ? ", others running" : ""));

  const toasts = new Set(await toastsOf(page));

  if (env.E2E_STEP_LINE) {
    await page.keyboard.press("F10");                          // Step Over, as a user presses it
    await frameAt("stepped", env.E2E_STEP_LINE);
    await variableIs("stepped-variables", env.E2E_STEP_LOCAL, env.E2E_STEP_VALUE);
    if (env.E2E_RUNNING) await waitForThreadState(page, "Running", "still-running");
    await shoot(page, "3b-stepped");
    log(`stepped over to line ${env.E2E_STEP_LINE}, ${env.E2E_STEP_LOCAL} = ${env.E2E_STEP_VALUE}`);
    for (const toast of await toastsOf(page)) toasts.add(toast);
  }

  await page.keyboard.press("F5");
  if (env.E2E_CONSOLE) {
    // Two sessions, two Debug Consoles, and the output is in the parent's (the child's output shares its pipes).
    // VS Code shows the focused session's console; when the focused child's session ends it focuses the parent
    // only if the parent's session still runs, and the parent exits as soon as it has reaped the child: when its
    // session ends first, the console stays on the child's. So, once the child runs on, pick the parent's console
    // in the Debug Console picker, as a user does.
    await waitUntil(page, "continued", ".debug-call-stack", () => ![...document.querySelectorAll(
      ".debug-call-stack .monaco-list-row")].some((n) => n.textContent.toLowerCase().includes("paused on breakpoint")));
    await quickOpen(page, `debug consoles ${env.E2E_CONSOLE}`, env.E2E_CONSOLE);
  }
  await waitForText(page, ".repl", env.E2E_OUTPUT, "debug-console");
  await shoot(page, "4-output");
  log("output in the Debug Console");
  for (const toast of await toastsOf(page)) toasts.add(toast);
  console.log(`notifications: ${JSON.stringify([...toasts])}`);  // the test judges them
  await browser.close();
}

main().then(() => {
  console.log("e2e ok");
  process.exit(0);
}, (err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
