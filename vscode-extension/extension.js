// Activation script of the km debugger: starts kdbg-dap (the Debug Adapter Protocol server of the km repo) for
// every debug session of type "km". kdbg-dap does all the work (gdb/MI against km's stub); this file only
// decides how to start it: the "km.adapterCommand" setting, or a "debugServer" port in launch.json for an
// adapter already listening (`kdbg-dap --port N`). A Python configuration (program *.py, or "python" given) gets
// `--python`: kdbg-dap then answers `initialize` with debugpy's capabilities, the only place VS Code reads the
// exception filters (Raised / Uncaught Exceptions) from. A forked child's session (`followForks`: kdbg-dap's
// `startDebugging` request) arrives here as an `attach` with `forkedChild` and the parent's `debugServer`, if any:
// it gets a kdbg-dap of its own like any session (a new connection to that server, or a new process).
"use strict";
const vscode = require("vscode");

function isPython(config) {
  return Boolean(config.python) || (typeof config.program === "string" && config.program.endsWith(".py"));
}

class KmAdapterFactory {
  createDebugAdapterDescriptor(session) {
    const port = session.configuration.debugServer;
    if (typeof port === "number") {
      return new vscode.DebugAdapterServer(port);
    }
    const command = vscode.workspace.getConfiguration("km").get("adapterCommand") || ["kdbg-dap"];
    const args = command.slice(1).concat(isPython(session.configuration) ? ["--python"] : []);
    return new vscode.DebugAdapterExecutable(command[0], args);
  }
}

class KmConfigurationProvider {
  // F5 with no launch.json: debug the active file's payload (foo.c -> build/foo.km), stopping at main; a Python
  // file runs in km under debugpy.
  resolveDebugConfiguration(folder, config) {
    if (!config.type && !config.request && !config.name) {
      const editor = vscode.window.activeTextEditor;
      if (editor && editor.document.languageId === "python") {
        Object.assign(config, { type: "km", request: "launch", name: "km: Python",
                                program: editor.document.fileName, python: "/usr/bin/python3" });
      } else if (editor && ["c", "cpp", "go"].includes(editor.document.languageId)) {
        const stem = editor.document.fileName.replace(/^.*[\\/]/, "").replace(/\.[^.]*$/, "");
        Object.assign(config, { type: "km", request: "launch", name: "km: launch",
                                program: "${workspaceFolder}/build/" + stem + ".km", stopOnEntry: true });
      }
    }
    if (!config.program) {
      return vscode.window.showErrorMessage("km: set \"program\" to the payload to debug").then(() => undefined);
    }
    return config;
  }
}

function activate(context) {
  context.subscriptions.push(
    vscode.debug.registerDebugAdapterDescriptorFactory("km", new KmAdapterFactory()),
    vscode.debug.registerDebugConfigurationProvider("km", new KmConfigurationProvider()));
}

function deactivate() {}

module.exports = { activate, deactivate };
