// The NVRAR_* settings the CPU executor does not read (it runs the hierarchical algorithm, one thread per rank):
// a broken one is refused, a set one is named once per process with why it does not apply.
#pragma once

#include "config/settings.h"

namespace nvrar::host {

void check_unused_settings(const config::Settings& settings);

}  // namespace nvrar::host
