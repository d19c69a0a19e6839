#include "runtime/thread_pool.h"

#include <algorithm>
#include <chrono>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

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

void ThreadPool::run_chunks(Job& job) {
  for (;;) {
    int64_t c = job.next.fetch_add(1);
    if (c >= job.chunks) return;
    int64_t b = c * job.chunk, e = std::min(job.n, b + job.chunk);
    (*job.fn)(b, e);
    if (job.done.fetch_add(1) + 1 == job.chunks) {
      std::lock_guard lock(m_);
      done_cv_.notify_all();
    }
  }
}

namespace {
inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}
// How long an idle worker (or a caller waiting for its chunks) spins before blocking.
constexpr auto kSpin = std::chrono::microseconds(200);
}  // namespace

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    auto until = std::chrono::steady_clock::now() + kSpin;
    for (int i = 0; published_.load(std::memory_order_acquire) == seen; ++i) {
      cpu_relax();
      if ((i & 255) == 255 && std::chrono::steady_clock::now() > until) break;
    }
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(m_);
      ++sleeping_;
      cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      --sleeping_;
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    run_chunks(*job);
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
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  int64_t chunks = std::min<int64_t>(static_cast<int64_t>(size()) * 4, (n + grain - 1) / grain);
  job->chunk = (n + chunks - 1) / chunks;
  job->chunks = (n + job->chunk - 1) / job->chunk;
  bool wake;
  {
    std::lock_guard lock(m_);
    job_ = job;
    published_.store(++generation_, std::memory_order_release);
    wake = sleeping_ > 0;
  }
  if (wake) cv_.notify_all();
  run_chunks(*job);
  // Every chunk has run when done == chunks, so fn is no longer used and may go out of scope.
  auto until = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0; job->done.load(std::memory_order_acquire) != job->chunks; ++i) {
    cpu_relax();
    if ((i & 255) == 255 && std::chrono::steady_clock::now() > until) break;
  }
  std::unique_lock lock(m_);
  done_cv_.wait(lock, [&] { return job->done.load() == job->chunks; });
}

void parallel_for(ThreadPool* pool, int64_t n, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
  if (pool)
    pool->parallel_for(n, grain, fn);
  else if (n > 0)
    fn(0, n);
}

}  // namespace loom
