// Rows of logits scored on up to n_threads threads: fn(worker, n_workers) takes rows worker, worker + n_workers, …
#pragma once

#include <algorithm>
#include <thread>
#include <vector>

namespace moe_eval {

template <typename F>
void ParallelRows(int n, int n_threads, F && fn) {
    const int n_workers = std::max(1, std::min(n_threads, n / 16 + 1));
    std::vector<std::thread> threads;
    for (int w = 1; w < n_workers; ++w) threads.emplace_back(fn, w, n_workers);
    fn(0, n_workers);
    for (auto & t : threads) t.join();
}

}  // namespace moe_eval
