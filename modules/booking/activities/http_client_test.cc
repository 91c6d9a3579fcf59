#include "booking/activities/http_client.h"

#include <gtest/gtest.h>

#include "booking/activities/test_http_server.h"

namespace itinera::http {
namespace {

using booking::testing::CannedResponse;
using booking::testing::SeenRequest;
using booking::testing::TestHttpServer;
using namespace std::chrono_literals;

TEST(HttpClientTest, ReturnsStatusBodyAndLowerCasedHeaders) {
  TestHttpServer server([](const SeenRequest&) { return CannedResponse{404, R"({"error":"not_found"})"}; });
  StatusOr<Response> r = Send("127.0.0.1", server.port(), {.target = "/flights/x/fare"}, 2s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, R"({"error":"not_found"})");
  EXPECT_EQ(r->headers["x-test-header"], "yes");
  EXPECT_EQ(server.last().method, "GET");
  EXPECT_EQ(server.last().target, "/flights/x/fare");
  EXPECT_EQ(server.last().headers.count("content-type"), 0u);  // no body, no content type
}

TEST(HttpClientTest, SendsJsonBodyAndExtraHeaders) {
  TestHttpServer server([](const SeenRequest& req) { return CannedResponse{201, req.body}; });
  Request request{.method = "POST", .target = "/flights/holds", .body = R"({"a":1})",
                  .headers = {{"Idempotency-Key", "k-1"}}};
  StatusOr<Response> r = Send("127.0.0.1", server.port(), request, 2s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, R"({"a":1})");
  SeenRequest seen = server.last();
  EXPECT_EQ(seen.method, "POST");
  EXPECT_EQ(seen.headers["content-type"], "application/json");
  EXPECT_EQ(seen.headers["idempotency-key"], "k-1");
}

TEST(HttpClientTest, RefusedConnectionIsUnavailable) {
  int port;
  {
    TestHttpServer closed(nullptr);  // take a free port, then give it back
    port = closed.port();
  }
  StatusOr<Response> r = Send("127.0.0.1", port, {.target = "/health"}, 2s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
}

TEST(HttpClientTest, SilentServerTimesOutWithinTheDeadline) {
  TestHttpServer silent(nullptr);
  auto start = std::chrono::steady_clock::now();
  StatusOr<Response> r = Send("127.0.0.1", silent.port(), {.target = "/health"}, 200ms);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kAborted);
  EXPECT_EQ(r.status().message().rfind("timeout", 0), 0u) << r.status().message();
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 2s);
}

TEST(HttpClientTest, ParsesBaseUrls) {
  std::string host;
  int port = 0;
  ASSERT_TRUE(ParseBaseUrl("http://127.0.0.1:7301", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 7301);
  ASSERT_TRUE(ParseBaseUrl("localhost:80/", &host, &port).ok());
  EXPECT_EQ(host, "localhost");
  EXPECT_EQ(port, 80);
  ASSERT_TRUE(ParseBaseUrl("http://[::1]:9", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 9);
  EXPECT_FALSE(ParseBaseUrl("https://x:1", &host, &port).ok());
  EXPECT_FALSE(ParseBaseUrl("http://x:notaport", &host, &port).ok());
  EXPECT_FALSE(ParseBaseUrl("http://:1", &host, &port).ok());
}

}  // namespace
}  // namespace itinera::http
