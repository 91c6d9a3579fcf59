// Task<T>: the lazy coroutine type of workflow code. A Task starts when it is
// awaited (or, for a workflow's root task, when the runtime first runs it) and
// resumes its awaiter when it finishes. Single-threaded: workflow code only
// ever runs on the thread that drives its WorkflowExecutor. Owns its frame.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <utility>

namespace itinera {

template <class T>
class Task;

namespace detail {

// Set by the runtime only while it answers a query by replay (runtime/
// query.h): called whenever a workflow coroutine returns, before its locals
// are destroyed, so a query handler that reads them can still be asked for
// the state the code ended in. Null otherwise; one per thread.
// `frame` is the returning coroutine's frame address.
inline thread_local void (*on_task_return)(void* arg, void* frame) = nullptr;
inline thread_local void* on_task_return_arg = nullptr;
inline void NotifyTaskReturn(void* frame) {
  if (on_task_return != nullptr) on_task_return(on_task_return_arg, frame);
}

template <class T>
struct TaskPromiseBase {
  std::coroutine_handle<> continuation;
  std::exception_ptr error;

  std::suspend_always initial_suspend() noexcept { return {}; }
  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      auto c = h.promise().continuation;
      return c ? c : std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() { error = std::current_exception(); }
};

template <class T>
struct TaskPromise : TaskPromiseBase<T> {
  std::optional<T> value;
  Task<T> get_return_object();
  // By reference, so that `co_return local;` (an implicit move) leaves the
  // local intact until the return hook has run.
  void return_value(T&& v) {
    NotifyTaskReturn(std::coroutine_handle<TaskPromise>::from_promise(*this).address());
    value = std::move(v);
  }
  void return_value(const T& v) {
    NotifyTaskReturn(std::coroutine_handle<TaskPromise>::from_promise(*this).address());
    value = v;
  }
  T Take() {
    if (this->error) std::rethrow_exception(this->error);
    return std::move(*value);
  }
};

template <>
struct TaskPromise<void> : TaskPromiseBase<void> {
  Task<void> get_return_object();
  void return_void() { NotifyTaskReturn(std::coroutine_handle<TaskPromise>::from_promise(*this).address()); }
  void Take() {
    if (error) std::rethrow_exception(error);
  }
};

}  // namespace detail

template <class T = void>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::TaskPromise<T>;
  using Handle = std::coroutine_handle<promise_type>;

  Task() = default;
  explicit Task(Handle h) : h_(h) {}
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (h_) h_.destroy();
  }

  // Awaiting a task runs it and resumes the awaiter when it finishes.
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiter) noexcept {
    h_.promise().continuation = awaiter;
    return h_;
  }
  T await_resume() { return h_.promise().Take(); }

  // For the runtime driving a root task.
  std::coroutine_handle<> handle() const { return h_; }
  bool done() const { return h_ && h_.done(); }
  T Result() { return h_.promise().Take(); }

 private:
  Handle h_;
};

namespace detail {
template <class T>
Task<T> TaskPromise<T>::get_return_object() {
  return Task<T>{std::coroutine_handle<TaskPromise<T>>::from_promise(*this)};
}
inline Task<void> TaskPromise<void>::get_return_object() {
  return Task<void>{std::coroutine_handle<TaskPromise<void>>::from_promise(*this)};
}
}  // namespace detail

}  // namespace itinera
