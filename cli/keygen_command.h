// `flowgate keygen`: writes CURVE key pairs for agents and gateways (issue 4).
#pragma once

namespace flowgate::cli {

// Runs `keygen` with its own flags (argv[0] is "keygen"); returns the exit code.
int RunKeygenCommand(int argc, char** argv);

}  // namespace flowgate::cli
