#include "runtime/thread_pool.h"

#include <algorithm>

#include "loom/kernel.h"

namespace loom {

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(m_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunks() {
  for (;;) {
    int64_t c = next_.fetch_add(1);
    if (c >= num_chunks_) break;
    int64_t b = c * chunk_, e = std::min(n_, b + chunk_);
    (*fn_)(b, e);
    if (done_.fetch_add(1) + 1 == num_chunks_) {
      std::lock_guard lock(m_);
      done_cv_.notify_all();
    }
  }
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock lock(m_);
      cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      ++active_;
    }
    run_chunks();
    {
      std::lock_guard lock(m_);
      --active_;
      done_cv_.notify_all();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (workers_.empty() || n <= grain || !busy_.try_lock()) {
    fn(0, n);
    return;
  }
  std::lock_guard busy(busy_, std::adopt_lock);
  int64_t max_chunks = static_cast<int64_t>(size()) * 4;
  {
    // Job state is published under m_, so a worker that wakes late sees a consistent job.
    std::lock_guard lock(m_);
    num_chunks_ = std::min(max_chunks, (n + grain - 1) / grain);
    chunk_ = (n + num_chunks_ - 1) / num_chunks_;
    num_chunks_ = (n + chunk_ - 1) / chunk_;
    n_ = n;
    fn_ = &fn;
    next_ = 0;
    done_ = 0;
    ++generation_;
  }
  cv_.notify_all();
  run_chunks();
  std::unique_lock lock(m_);
  // Wait for every chunk and for every worker to leave run_chunks (so fn_ may be reused).
  done_cv_.wait(lock, [&] { return done_.load() == num_chunks_ && active_ == 0; });
}

void parallel_for(ThreadPool* pool, int64_t n, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
  if (pool) pool->parallel_for(n, grain, fn);
  else if (n > 0) fn(0, n);
}

}  // namespace loom
