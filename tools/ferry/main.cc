// `ferry`: one CLI with subcommands (`ferry --help` lists them). Each subcommand lives in
// its own *_command.cc and registers itself (see command.h).
#include "command.h"

int main(int argc, char** argv) { return ferry::cli::RunMain(argc, argv); }
