#include "supplier_server.h"

#include <fmt/format.h>

#include "common/json_limits.h"
#include "common/log.h"

namespace itinera::supplier {

StatusOr<std::unique_ptr<SupplierServer>> SupplierServer::Start(SupplierService& service,
                                                                 const ServerOptions& options) {
  // Each request becomes a ServiceRequest; the service's Reply becomes JSON.
  http::Handler handler = [&service](const http::HttpRequest& req) {
    ServiceRequest request{.method = req.method, .target = req.target, .body = req.body};
    if (auto key = req.Header("Idempotency-Key")) request.idempotency_key = std::string(*key);
    if (auto tp = req.Header("traceparent")) request.traceparent = std::string(*tp);
    Reply reply = service.Handle(request);
    LogDebug("supplier {} {} -> {}{}", request.method, request.target, reply.status,
             reply.replayed ? " (replayed)" : "");
    // A message may quote the target's bytes, which need not be UTF-8.
    http::HttpResponse res{.status = reply.status, .body = DumpJson(reply.body)};
    if (reply.replayed) res.headers.emplace_back("Idempotent-Replayed", "true");
    return res;
  };
  http::ServerOptions http_options{.address = options.address,
                                   .port = options.port,
                                   .idle_timeout = options.idle_timeout,
                                   .body_limit = options.body_limit,
                                   // Injected hangs hold a handler each.
                                   .handler_threads = 64,
                                   .name = "supplier",
                                   // Wakes injected hangs, so their connections can close.
                                   .on_stop = [&service] { service.Stop(); }};
  auto http = http::HttpServer::Start(std::move(handler), std::move(http_options));
  if (!http.ok()) return http.status();
  std::unique_ptr<SupplierServer> server(new SupplierServer());
  server->http_ = std::move(http.value());
  server->port_ = server->http_->port();
  return server;
}

SupplierServer::~SupplierServer() { Stop(); }

void SupplierServer::Stop() {
  if (http_) http_->Stop();
}

}  // namespace itinera::supplier
