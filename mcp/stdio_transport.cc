#include "mcp/stdio_transport.h"

#include <fmt/format.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "common/json_limits.h"

namespace itinera::mcp {
namespace {

// stdout, one message per line, whole lines only.
class LineWriter : public Outbound {
 public:
  explicit LineWriter(std::ostream& out) : out_(out) {}

  bool Send(const json& message) override {
    // Replace invalid UTF-8 rather than throw: the line must still go out.
    std::string line = DumpJson(message);
    std::lock_guard lock(mu_);
    out_ << line << '\n';
    out_.flush();
    return static_cast<bool>(out_);
  }

 private:
  std::mutex mu_;
  std::ostream& out_;
};

// Counts requests in flight so the end of input can wait for them.
class InFlight {
 public:
  void Add() {
    std::lock_guard lock(mu_);
    ++count_;
  }
  void Done() {
    std::lock_guard lock(mu_);
    if (--count_ == 0) cv_.notify_all();
  }
  int count() {
    std::lock_guard lock(mu_);
    return count_;
  }
  void WaitIdle() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return count_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

// Reads one line of at most `max` bytes (without its newline); a longer one
// is consumed to its end and reported as too long, never held in memory.
// False at the end of input.
bool ReadLine(std::istream& in, std::size_t max, std::string& line, bool& too_long) {
  line.clear();
  too_long = false;
  std::streambuf* buf = in.rdbuf();
  bool any = false;
  for (int c = buf->sbumpc(); c != std::char_traits<char>::eof(); c = buf->sbumpc()) {
    any = true;
    if (c == '\n') return true;
    if (line.size() < max) {
      line.push_back(static_cast<char>(c));
    } else {
      too_long = true;
    }
  }
  return any;
}

bool IsRequest(const json& message) {
  return message.is_object() && message.contains("method") && message.contains("id");
}

}  // namespace

int RunStdio(const Server& server, const Principal& principal, std::istream& in, std::ostream& out,
             const StdioOptions& options) {
  Session session(server, principal, "stdio");
  LineWriter writer(out);
  InFlight in_flight;
  std::string line;
  bool too_long = false;
  while (ReadLine(in, options.max_message_bytes, line, too_long)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (too_long) {
      writer.Send({{"jsonrpc", "2.0"},
                   {"id", nullptr},
                   {"error",
                    {{"code", code::kInvalidRequest},
                     {"message", fmt::format("invalid request: the message is larger than {} bytes",
                                             options.max_message_bytes)}}}});
      continue;
    }
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    auto parsed = ParseJson(line);
    if (!parsed.ok()) {
      writer.Send(session.HandleText(line, writer));  // -32700 saying what is wrong
      continue;
    }
    json message = std::move(parsed.value());
    // Initialize runs inline so that what follows it sees the negotiated
    // session; other requests run on their own threads.
    if (!IsRequest(message) || message["method"] == "initialize") {
      json answer = session.Handle(message, writer);
      if (!answer.is_null()) writer.Send(answer);
      continue;
    }
    if (in_flight.count() >= options.max_in_flight) {
      // A client that floods us waits for nothing: it is told at once.
      writer.Send({{"jsonrpc", "2.0"},
                   {"id", message["id"]},
                   {"error",
                    {{"code", code::kInternalError},
                     {"message", fmt::format("too many requests in flight (at most {}); retry when some have answered",
                                             options.max_in_flight)}}}});
      continue;
    }
    in_flight.Add();
    std::thread([&session, &writer, &in_flight, message = std::move(message)] {
      json answer = session.Handle(message, writer);
      if (!answer.is_null()) writer.Send(answer);
      in_flight.Done();
    }).detach();
  }
  // The client has gone: requests still running see cancelled() and their
  // waits on the client end; their answers go to a closed pipe.
  session.Close();
  in_flight.WaitIdle();
  return 0;
}

}  // namespace itinera::mcp
