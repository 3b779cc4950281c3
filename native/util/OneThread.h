// A thread that runs the jobs handed to it one at a time, for the life of the process; Run() blocks
// the caller (a libuv worker) until its job is done and rethrows what the job threw. For native work
// that must always run on the same thread (see BenchWorker::Run).
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace moe_eval {

class OneThread {
public:
    OneThread() : thread_([this] { Loop(); }) { thread_.detach(); }
    // Never destroy one (allocate it once and keep it): the detached thread waits on it until the process exits.
    OneThread(const OneThread &) = delete;
    OneThread & operator=(const OneThread &) = delete;

    void Run(const std::function<void()> & job) {
        std::unique_lock<std::mutex> lock(mutex_);
        idle_.wait(lock, [this] { return job_ == nullptr; });  // one job at a time
        job_ = &job;
        error_ = nullptr;
        done_ = false;
        work_.notify_all();
        finished_.wait(lock, [this] { return done_; });
        const std::exception_ptr error = error_;
        job_ = nullptr;
        idle_.notify_all();
        if (error) std::rethrow_exception(error);
    }

private:
    void Loop() {
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            work_.wait(lock, [this] { return job_ != nullptr && !done_; });
            const std::function<void()> * job = job_;
            lock.unlock();
            std::exception_ptr error;
            try {
                (*job)();
            } catch (...) {
                error = std::current_exception();
            }
            lock.lock();
            error_ = error;
            done_ = true;
            finished_.notify_all();
        }
    }

    std::mutex mutex_;
    std::condition_variable work_, finished_, idle_;
    const std::function<void()> * job_ = nullptr;
    std::exception_ptr error_;
    bool done_ = false;
    std::thread thread_;  // last: starts after the members it uses
};

}  // namespace moe_eval
