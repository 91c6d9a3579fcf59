#include "common/ids.h"

#include <fmt/format.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <random>
#include <stdexcept>
#include <vector>

namespace itinera {

namespace {
std::mt19937_64& Rng() {
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   (static_cast<std::uint64_t>(std::random_device{}()) << 32)};
  return rng;
}
}  // namespace

std::string FormatUuid(std::uint64_t hi, std::uint64_t lo) {
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 1
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xffff,
                     hi & 0xffff, lo >> 48, lo & 0xffffffffffffULL);
}

std::string NewUuid() { return FormatUuid(Rng()(), Rng()()); }

std::int64_t NewLeaseToken() {
  return static_cast<std::int64_t>(Rng()() & 0x7fffffffffffffffULL);
}

std::string NewSecretId(std::size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) {
    throw std::runtime_error("the system's random number generator failed");
  }
  std::string hex;
  hex.reserve(2 * bytes);
  for (unsigned char b : buf) hex += fmt::format("{:02x}", b);
  return hex;
}

std::string DefaultIdentity(const std::string& suffix) {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  auto id = fmt::format("{}:{}", host, getpid());
  if (!suffix.empty()) id += ":" + suffix;
  return id;
}

}  // namespace itinera
