// A RocksDB environment for a process made by fork() from one that had used RocksDB.
//
// RocksDB runs flushes and compactions on the thread pools of its default environment,
// a process-wide object. fork() copies that object into the child but not its threads:
// the child's pools believe their threads exist, so a job scheduled there (the flush a
// close waits for) never runs, and the pools' condition variables still count the dead
// waiters. This environment is the default one (files, clock) with pools of its own,
// made fresh in the child (store/fork.rs decides when). Its threads start as jobs
// arrive, up to the count RocksDB asks for, and live as long as the process: the
// environment is never destroyed (RocksDB keeps the default one for the process too).

#include <condition_variable>
#include <deque>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#include "rocksdb/env.h"

namespace {

struct Job {
  void (*fn)(void*);
  void* arg;
  void* tag;
  void (*unschedule)(void*);
};

class Pool {
 public:
  void Schedule(const Job& job) {
    std::unique_lock<std::mutex> lock(mu_);
    queue_.push_back(job);
    Grow();
    cv_.notify_one();
  }

  // Removes the queued jobs of `tag`, calling their unschedule functions outside the
  // lock (as RocksDB's pool does: they take the database's mutex).
  int Unschedule(void* tag) {
    std::vector<Job> removed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = queue_.begin(); it != queue_.end();) {
        if (it->tag == tag) {
          removed.push_back(*it);
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (const Job& job : removed) {
      if (job.unschedule != nullptr) {
        job.unschedule(job.arg);
      }
    }
    return static_cast<int>(removed.size());
  }

  unsigned int QueueLen() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<unsigned int>(queue_.size());
  }

  // The pool only grows: RocksDB asks for more threads as databases open.
  void AtLeast(int threads) {
    std::lock_guard<std::mutex> lock(mu_);
    if (threads > limit_) {
      limit_ = threads;
      Grow();
    }
  }

  int Limit() {
    std::lock_guard<std::mutex> lock(mu_);
    return limit_;
  }

 private:
  // A thread for every queued job no idle thread will take, up to the limit. Called
  // with mu_ held. If no thread can be made the job waits for the next attempt.
  void Grow() {
    while (started_ < limit_ && idle_ < static_cast<int>(queue_.size())) {
      try {
        std::thread(&Pool::Run, this).detach();
      } catch (const std::system_error&) {
        return;
      }
      ++started_;
      ++idle_;  // counted idle until it takes a job
    }
  }

  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return !queue_.empty(); });
      Job job = queue_.front();
      queue_.pop_front();
      --idle_;
      lock.unlock();
      job.fn(job.arg);
      lock.lock();
      ++idle_;
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  int limit_ = 1;
  int started_ = 0;
  int idle_ = 0;
};

class ForkEnv : public rocksdb::EnvWrapper {
 public:
  ForkEnv() : rocksdb::EnvWrapper(rocksdb::Env::Default()) {}
  // Never destroyed (see the top of the file): the pools' threads run detached.

  static const char* kClassName() { return "NexxoForkEnv"; }
  const char* Name() const override { return kClassName(); }

  void Schedule(void (*fn)(void*), void* arg, Priority pri, void* tag, void (*unschedule)(void*)) override {
    pool(pri).Schedule(Job{fn, arg, tag, unschedule});
  }
  int UnSchedule(void* tag, Priority pri) override { return pool(pri).Unschedule(tag); }
  unsigned int GetThreadPoolQueueLen(Priority pri) const override { return pool(pri).QueueLen(); }
  void SetBackgroundThreads(int number, Priority pri) override { pool(pri).AtLeast(number); }
  void IncBackgroundThreadsIfNeeded(int number, Priority pri) override { pool(pri).AtLeast(number); }
  int GetBackgroundThreads(Priority pri) override { return pool(pri).Limit(); }
  // No thread is held back for a compaction's parts: it runs them on the threads it has.
  int ReserveThreads(int, Priority) override { return 0; }
  int ReleaseThreads(int, Priority) override { return 0; }
  // The default environment would change its own (dead) pools: nothing to do here.
  void LowerThreadPoolIOPriority(Priority) override {}
  void LowerThreadPoolCPUPriority(Priority) override {}
  rocksdb::Status LowerThreadPoolCPUPriority(Priority, rocksdb::CpuPriority) override { return rocksdb::Status::OK(); }

  void StartThread(void (*fn)(void*), void* arg) override {
    {
      std::lock_guard<std::mutex> lock(threads_mu_);
      ++threads_running_;
    }
    try {
      std::thread([this, fn, arg] {
        fn(arg);
        std::lock_guard<std::mutex> lock(threads_mu_);
        --threads_running_;
        threads_cv_.notify_all();
      }).detach();
    } catch (const std::system_error&) {
      std::lock_guard<std::mutex> lock(threads_mu_);
      --threads_running_;
    }
  }
  void WaitForJoin() override {
    std::unique_lock<std::mutex> lock(threads_mu_);
    threads_cv_.wait(lock, [this] { return threads_running_ == 0; });
  }

 private:
  Pool& pool(Priority pri) const {
    int i = static_cast<int>(pri);
    if (i < 0 || i >= static_cast<int>(Priority::TOTAL)) {
      i = static_cast<int>(Priority::LOW);
    }
    return pools_[i];
  }

  mutable Pool pools_[static_cast<int>(Priority::TOTAL)];
  std::mutex threads_mu_;
  std::condition_variable threads_cv_;
  int threads_running_ = 0;
};

}  // namespace

// The C API's environment handle (db/c.cc defines it the same way): what
// rocksdb::Env::from_raw takes. rocksdb_env_destroy deletes `rep` unless `is_default`.
struct rocksdb_env_t {
  rocksdb::Env* rep;
  bool is_default;
};

// A new environment with pools of its own, or NULL if it could not be made. It is
// marked default so that the C API never deletes it (it must outlive every database
// that used it, and its detached threads refer to it).
extern "C" rocksdb_env_t* nexxo_core_fork_env_new() {
  ForkEnv* env = new (std::nothrow) ForkEnv();
  if (env == nullptr) {
    return nullptr;
  }
  rocksdb_env_t* handle = new (std::nothrow) rocksdb_env_t{env, true};
  if (handle == nullptr) {
    delete env;
  }
  return handle;
}
