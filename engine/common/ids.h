// Identifiers: run ids (UUID v4 text), lease tokens, worker identities and
// secret ids. Thread-safe (each thread has its own generator; secret ids come
// from OpenSSL's CSPRNG).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace itinera {

std::string NewUuid();
std::int64_t NewLeaseToken();
// "hostname:pid:suffix", the name a worker records in history.
std::string DefaultIdentity(const std::string& suffix = "");
// A UUID v4 text built from two 64-bit words, for deterministic uuid() in workflows.
std::string FormatUuid(std::uint64_t hi, std::uint64_t lo);
// `bytes` bytes from a CSPRNG (OpenSSL RAND_bytes) as lower-case hex: for ids
// that grant access, such as MCP session ids, which must not be guessable
// from ids seen before. Throws std::runtime_error if the CSPRNG fails.
std::string NewSecretId(std::size_t bytes = 16);

}  // namespace itinera
