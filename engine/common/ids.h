// Identifiers: run ids (UUID v4 text), lease tokens and worker identities.
// Thread-safe (each thread has its own generator).
#pragma once

#include <cstdint>
#include <string>

namespace itinera {

std::string NewUuid();
std::int64_t NewLeaseToken();
// "hostname:pid:suffix", the name a worker records in history.
std::string DefaultIdentity(const std::string& suffix = "");
// A UUID v4 text built from two 64-bit words, for deterministic uuid() in workflows.
std::string FormatUuid(std::uint64_t hi, std::uint64_t lo);

}  // namespace itinera
