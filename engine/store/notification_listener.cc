#include "store/notification_listener.h"

#include <fmt/format.h>

#include <pqxx/pqxx>

namespace itinera::store {

namespace {
class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& c, const std::string& channel, NotificationListener::Handler* handler,
           std::function<bool(int)>* ignore)
      : pqxx::notification_receiver(c, channel), handler_(handler), ignore_(ignore) {}
  void operator()(const std::string& payload, int backend_pid) override {
    // Transfer tasks are for whichever sweeper comes first, the sender's
    // own process included: they are never ignored.
    if (*ignore_ && channel() != kTransferChannel && (*ignore_)(backend_pid)) return;
    (*handler_)(channel(), payload);
  }

 private:
  NotificationListener::Handler* handler_;
  std::function<bool(int)>* ignore_;
};
}  // namespace

struct NotificationListener::Impl {
  Handler handler;
  std::function<bool(int)> ignore;
  std::unique_ptr<pqxx::connection> conn;
  std::vector<std::unique_ptr<Receiver>> receivers;
};

NotificationListener::NotificationListener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

NotificationListener::~NotificationListener() {
  if (impl_) impl_->receivers.clear();
}

StatusOr<std::unique_ptr<NotificationListener>> NotificationListener::Connect(const std::string& dsn,
                                                                             const std::vector<std::string>& channels,
                                                                             Handler handler,
                                                                             std::function<bool(int)> ignore_sender) {
  try {
    auto impl = std::make_unique<Impl>();
    impl->handler = std::move(handler);
    impl->ignore = std::move(ignore_sender);
    impl->conn = std::make_unique<pqxx::connection>(dsn);
    for (const auto& ch : channels) impl->receivers.push_back(std::make_unique<Receiver>(*impl->conn, ch, &impl->handler, &impl->ignore));
    // Make sure LISTEN has been issued before the caller relies on it.
    impl->conn->get_notifs();
    return std::unique_ptr<NotificationListener>(new NotificationListener(std::move(impl)));
  } catch (const std::exception& e) {
    return Status::Unavailable(fmt::format("cannot listen for notifications: {}", e.what()));
  }
}

Status NotificationListener::Wait(std::chrono::milliseconds timeout) {
  try {
    if (impl_->conn->get_notifs() > 0) return Status::Ok();
    long secs = static_cast<long>(timeout.count() / 1000);
    long usecs = static_cast<long>((timeout.count() % 1000) * 1000);
    impl_->conn->await_notification(secs, usecs);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Unavailable(fmt::format("notification connection: {}", e.what()));
  }
}

}  // namespace itinera::store
