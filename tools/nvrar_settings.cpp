// nvrar-settings: the NVRAR_* environment variables (src/config/settings.h).
//
//   nvrar-settings                              the value in force of each, and whether it came from the environment
//   nvrar-settings --markdown > docs/settings.md   the settings reference, rendered from the table
//
// Exit status: 0 done; 2 bad usage or a malformed variable (message on stderr).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "config/settings.h"
#include "nvrar/types.h"

int main(int argc, char** argv) {
  constexpr int kExitOk = 0;
  constexpr int kExitError = 2;
  CLI::App app{"Prints NVRAR's settings (the NVRAR_* environment variables): the values in force, or their reference."};
  app.footer("Exit status: 0 done, 2 usage error or a malformed NVRAR_* variable (message on stderr).");
  bool markdown = false;
  app.add_flag("--markdown", markdown,
               "Print docs/settings.md (every variable: type, default, accepted form, meaning)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitError;
  }
  try {
    const std::string text =
        markdown ? nvrar::config::settings_markdown() : nvrar::config::describe_settings(nvrar::config::settings());
    fmt::print("{}", text);
  } catch (const nvrar::Error& e) {
    fmt::print(stderr, "nvrar-settings: {}\n", e.what());
    return kExitError;
  }
  return kExitOk;
}
