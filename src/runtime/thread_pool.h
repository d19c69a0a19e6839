// A small fork-join pool: parallel_for splits a range over the workers and the calling thread.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace loom {

class ThreadPool {
 public:
  // threads: total threads including the caller; 0 means hardware concurrency.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Runs fn over [0, n) in chunks; returns when all are done. Concurrent callers: one gets the
  // workers, the others run serially on their own thread (never deadlocks, never oversubscribes).
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  // One parallel_for call. Workers hold it by shared_ptr, so a worker that wakes late only ever
  // touches the counters of the job it woke for (which are all claimed by then), never the next.
  struct Job {
    const std::function<void(int64_t, int64_t)>* fn = nullptr;
    int64_t n = 0, chunk = 0, chunks = 0;
    std::atomic<int64_t> next{0}, done{0};
  };
  void worker_loop();
  void run_chunks(Job& job);

  std::vector<std::thread> workers_;
  std::mutex busy_;  // held by the caller whose job is running
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  std::shared_ptr<Job> job_;
  uint64_t generation_ = 0;
  // Mirrors generation_ so idle workers can spin on it briefly before sleeping: decode runs
  // hundreds of short parallel regions back to back, and a futex wake costs more than the work.
  std::atomic<uint64_t> published_{0};
  int sleeping_ = 0;  // workers blocked on cv_ (guarded by m_)
  bool stop_ = false;
};

}  // namespace loom
