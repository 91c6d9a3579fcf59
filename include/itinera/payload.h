// itinera/payload.h: the values workflows and activities exchange. Inputs,
// results, signals, queries, side effects and heartbeat details are any of
//   - a protobuf message (stored as "binary/protobuf" under its full name);
//   - std::string, bool, an integer or a double ("json/plain", type names
//     "string", "bool", "int32", "int64", "uint64", "double");
//   - a default-constructible type nlohmann-json converts: a struct
//     described with NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE, vectors and maps of
//     these ("json/plain", compact key-sorted JSON, under the type's
//     kPayloadTypeName, its PayloadNaming<T>, or else its C++ name):
//
//     struct Trip { std::string city; int nights = 0; };
//     NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Trip, city, nights)
//     inline constexpr itinera::WorkflowType<Trip, std::string> kPlan{"trips.Plan"};
//
// The type name is part of every recorded run: a payload decodes only into
// the type it was written from, which is how replay notices changed code.
// The engine does the encoding; EncodePayload, DecodePayload and
// PayloadFromJson (JSON text to a payload, naming a bad field) are here for
// tests and tools. Stateless and thread-safe.
#pragma once

#include "common/codec.h"
