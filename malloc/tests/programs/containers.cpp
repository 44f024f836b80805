// A C++ workload for the LD_PRELOAD test: std containers built on several threads and
// destroyed on others (operator new/delete reach malloc/free through libstdc++).
// stdout must be the same under glibc and under allockit-malloc; stderr says whether
// liballockit_malloc.so is mapped into this process.
#include <condition_variable>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

struct Batch {
    std::map<std::string, std::vector<std::uint64_t>> words;
    std::unordered_map<std::uint64_t, std::string> names;
};

int main() {
    std::ifstream maps("/proc/self/maps");
    std::stringstream text;
    text << maps.rdbuf();
    std::cerr << "allockit mapped: " << (text.str().find("liballockit_malloc") != std::string::npos ? "True" : "False")
              << "\n";

    std::mutex lock;
    std::condition_variable ready;
    std::queue<std::unique_ptr<Batch>> queue;
    int producers_left = 4;
    std::vector<std::thread> producers;
    for (int id = 0; id < 4; ++id) {
        producers.emplace_back([&, id] {
            std::uint64_t x = 1469598103934665603ull + id;
            for (int b = 0; b < 200; ++b) {
                auto batch = std::make_unique<Batch>();
                for (int i = 0; i < 200; ++i) {
                    x = x * 6364136223846793005ull + 1442695040888963407ull;
                    std::string word(1 + (x >> 58), static_cast<char>('a' + (x >> 40) % 26));
                    batch->words[word].push_back(x >> 32);
                    batch->names.emplace(x >> 20, word + std::to_string(i));
                }
                std::lock_guard<std::mutex> guard(lock);
                queue.push(std::move(batch));
                ready.notify_one();
            }
            std::lock_guard<std::mutex> guard(lock);
            --producers_left;
            ready.notify_all();
        });
    }
    std::uint64_t checksum = 0, entries = 0;
    std::thread consumer([&] {
        for (;;) {
            std::unique_lock<std::mutex> guard(lock);
            ready.wait(guard, [&] { return !queue.empty() || producers_left == 0; });
            if (queue.empty()) return;
            auto batch = std::move(queue.front());
            queue.pop();
            guard.unlock();
            // Batches arrive in any order: sum per-batch hashes.
            std::uint64_t hash = 0;
            for (auto &[word, values] : batch->words) {
                for (auto v : values) hash = hash * 31 + v + word.size();
                entries += values.size();
            }
            for (auto &[key, name] : batch->names) hash += key % 7 + name.size();
            checksum += hash;
            // `batch` is freed here, on the consumer thread: remote frees.
        }
    });
    for (auto &t : producers) t.join();
    consumer.join();
    std::cout << "entries " << entries << " checksum " << checksum << "\n";
    return 0;
}
