// FetchUrl against a real loopback server (engine/http): documents, HTTP
// error statuses, the body cap, the deadline, and URLs it cannot use.
#include "http/url_fetch.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "http/http_server.h"

namespace itinera::http {
namespace {

using std::chrono::milliseconds;

// 4 KiB sent with chunked encoding (no Content-Length for the cap to see).
class ChunkedBody : public BodyStream {
 public:
  void Attach(std::function<void()>) override {}
  State Pull(std::string& out, bool) override {
    for (int i = 0; i < 8; ++i) out += std::string(512, 'x');
    return State::kEnd;
  }
  void Detach(bool) override {}
  std::chrono::milliseconds idle_interval() const override { return std::chrono::seconds(60); }
};

class UrlFetchTest : public ::testing::Test {
 protected:
  UrlFetchTest() {
    auto started = HttpServer::Start(
        [this](const HttpRequest& req) {
          if (req.target == "/doc?x=1") return HttpResponse{.body = R"({"host":")" + std::string(req.Header("Host").value_or("")) + "\"}"};
          if (req.target == "/big") return HttpResponse{.body = std::string(4096, 'x')};
          if (req.target == "/big-chunked") {
            HttpResponse reply;
            reply.stream = std::make_shared<ChunkedBody>();
            return reply;
          }
          if (req.target == "/slow") {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [this] { return released_; });  // until the test is done with it
            return HttpResponse{.body = "{}"};
          }
          return HttpResponse{.status = 404, .body = R"({"error":"not_found"})"};
        },
        ServerOptions{.name = "fetch-test"});
    EXPECT_TRUE(started.ok()) << started.status().message();
    server_ = std::move(started.value());
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }
  ~UrlFetchTest() override {
    {
      std::lock_guard lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
    server_->Stop();
  }

  std::unique_ptr<HttpServer> server_;
  std::string base_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
};

TEST_F(UrlFetchTest, GetsADocumentWithItsStatusAndTheHostHeader) {
  auto doc = FetchUrl(base_ + "/doc?x=1#fragment");
  ASSERT_TRUE(doc.ok()) << doc.status().message();
  EXPECT_EQ(doc->status, 200);
  EXPECT_EQ(doc->content_type, "application/json");
  EXPECT_EQ(doc->body, R"({"host":"127.0.0.1:)" + std::to_string(server_->port()) + "\"}");

  auto missing = FetchUrl(base_ + "/nothing");
  ASSERT_TRUE(missing.ok()) << "an HTTP error status is a document";
  EXPECT_EQ(missing->status, 404);
}

TEST_F(UrlFetchTest, RefusesBodiesOverTheCapAndAnswersPastTheDeadline) {
  auto big = FetchUrl(base_ + "/big", {.max_body = 1024});
  EXPECT_EQ(big.status().code(), StatusCode::kUnavailable) << big.status().message();
  EXPECT_TRUE(FetchUrl(base_ + "/big", {.max_body = 8192}).ok());
  auto chunked = FetchUrl(base_ + "/big-chunked", {.max_body = 1024});
  EXPECT_EQ(chunked.status().code(), StatusCode::kUnavailable) << "a chunked body over the cap";
  auto whole = FetchUrl(base_ + "/big-chunked", {.max_body = 8192});
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  EXPECT_EQ(whole->body.size(), 4096u);

  auto slow = FetchUrl(base_ + "/slow", {.timeout = milliseconds(300)});
  EXPECT_EQ(slow.status().code(), StatusCode::kAborted) << slow.status().message();
  EXPECT_NE(slow.status().message().find("timeout"), std::string::npos) << slow.status().message();
}

TEST_F(UrlFetchTest, NamesWhatIsWrongWithAUrlOrAnUnreachablePeer) {
  EXPECT_EQ(FetchUrl("ftp://example.com/x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FetchUrl("http://user:pw@127.0.0.1/x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FetchUrl("http://127.0.0.1:99999/x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FetchUrl("http:///x").status().code(), StatusCode::kInvalidArgument);
  // A port nobody listens on: the server's, once it is stopped.
  std::string url = base_ + "/doc?x=1";
  {
    std::lock_guard lock(mu_);
    released_ = true;
  }
  cv_.notify_all();
  server_->Stop();
  EXPECT_EQ(FetchUrl(url).status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace itinera::http
