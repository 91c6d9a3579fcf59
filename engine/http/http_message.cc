#include "http/http_message.h"

#include <algorithm>
#include <cctype>

namespace itinera::http {

std::optional<std::string_view> HttpRequest::Header(std::string_view name) const {
  auto same = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
             return std::tolower(x) == std::tolower(y);
           });
  };
  for (const auto& [n, v] : headers) {
    if (same(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

}  // namespace itinera::http
