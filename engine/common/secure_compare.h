// Comparing secrets (bearer tokens) without leaking, through timing, where a
// guess first differs. Shared by the admin API and MCP's token check.
#pragma once

#include <string_view>

namespace itinera {

// Whether a equals b, in time that depends only on their lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace itinera
