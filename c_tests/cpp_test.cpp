// The C++ header: RAII, move semantics, optional results, exceptions and try_ variants.
#include <gtest/gtest.h>

#include <array>
#include <sys/stat.h>
#include <cstdlib>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "nexxo_cache.hpp"

namespace {

static_assert(!std::is_copy_constructible_v<nexxo::Cache>);
static_assert(!std::is_copy_assignable_v<nexxo::Cache>);
static_assert(std::is_nothrow_move_constructible_v<nexxo::Cache>);
static_assert(std::is_nothrow_move_assignable_v<nexxo::Cache>);

std::string fresh_dir() {
  const char *env = std::getenv("NEXXO_TEST_TMP");
  std::string base = env ? env : "/tmp";
  mkdir(base.c_str(), 0700);  // absent in a fresh build directory
  std::string tmpl = base + "/nexxo-cpp-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) std::abort();
  return std::string(buf.data()) + "/cache";
}

std::vector<std::uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }

TEST(Cache, SetGetRemove) {
  auto c = nexxo::Cache::open(fresh_dir());
  c.set("transform", "src/a.ts", "export {}");
  EXPECT_EQ(c.get("transform", "src/a.ts"), bytes("export {}"));
  EXPECT_EQ(c.get("parse", "src/a.ts"), std::nullopt);
  std::vector<std::uint8_t> key{0, 1, 2}, value{9, 8, 7};
  c.set("bundle", key, value);
  EXPECT_EQ(c.get("bundle", key), value);
  std::array<std::uint8_t, 2> akey{{5, 6}};
  c.set("meta", akey, std::string("v"));
  EXPECT_EQ(c.get("meta", akey), bytes("v"));
  c.remove("transform", "src/a.ts");
  EXPECT_FALSE(c.get("transform", "src/a.ts").has_value());
}

TEST(Cache, GetInto) {
  auto c = nexxo::Cache::open(fresh_dir());
  c.set("parse", "k", "0123456789");
  std::vector<std::uint8_t> buf(64);
  EXPECT_EQ(c.get_into("parse", "k", buf), 10u);
  EXPECT_EQ(std::string(buf.begin(), buf.begin() + 10), "0123456789");
  EXPECT_EQ(c.get_into("parse", "absent", buf), std::nullopt);
  std::array<std::uint8_t, 4> small{};
  std::size_t needed = 0;
  EXPECT_EQ(c.try_get_into("parse", "k", small, needed), NEXXO_BUFFER_TOO_SMALL);
  EXPECT_EQ(needed, 10u);
  try {
    c.get_into("parse", "k", small);
    FAIL() << "expected nexxo::Error";
  } catch (const nexxo::Error &e) {
    EXPECT_EQ(e.status(), NEXXO_BUFFER_TOO_SMALL);
  }
}

TEST(Cache, ErrorsCarryTheStatus) {
  const std::string dir = fresh_dir();
  auto c = nexxo::Cache::open(dir);
  try {
    c.set("nope", "k", "v");
    FAIL();
  } catch (const nexxo::Error &e) {
    EXPECT_EQ(e.status(), NEXXO_UNKNOWN_CATEGORY);
    EXPECT_NE(std::string(e.what()).find("set(nope)"), std::string::npos);
  }
  EXPECT_EQ(c.try_set("parse", "", "v"), NEXXO_INVALID_ARGUMENT);
  std::string long_key(NEXXO_MAX_KEY_LEN + 1, 'k');
  EXPECT_EQ(c.try_set("parse", long_key, "v"), NEXXO_TOO_LARGE);
  nexxo::Cache second;
  EXPECT_EQ(nexxo::Cache::try_open(dir, {}, second), NEXXO_OK); /* shares the store */
  EXPECT_TRUE(second.is_open());
  second = nexxo::Cache();
  EXPECT_THROW(nexxo::Cache::open(dir + "/NEXXO_FORMAT"), nexxo::Error); /* not a directory */
  nexxo::Options bad;
  bad.memory_budget = 1024;
  EXPECT_EQ(nexxo::Cache::try_open(fresh_dir(), bad, second), NEXXO_INVALID_ARGUMENT);
  std::optional<std::vector<std::uint8_t>> out;
  EXPECT_EQ(c.try_get("nope", "k", out), NEXXO_UNKNOWN_CATEGORY);
  EXPECT_EQ(c.try_get("parse", "absent", out), NEXXO_NOT_FOUND);
}

TEST(Cache, MoveTransfersOwnership) {
  const std::string dir = fresh_dir();
  auto a = nexxo::Cache::open(dir);
  a.set("parse", "k", "v");
  nexxo::Cache b = std::move(a);
  EXPECT_FALSE(a.is_open());
  EXPECT_TRUE(b.is_open());
  EXPECT_EQ(b.get("parse", "k"), bytes("v"));
  nexxo::Cache c;
  c = std::move(b);
  EXPECT_EQ(c.get("parse", "k"), bytes("v"));
  c.close();
  c.close();  // idempotent
  auto again = nexxo::Cache::open(dir);  // the lock was released
  EXPECT_EQ(again.get("parse", "k"), bytes("v"));
}

TEST(Cache, BatchStatsPolicyClear) {
  nexxo::Options o;
  o.max_size = 1 << 20;
  o.compression = NEXXO_COMPRESSION_NONE;
  o.categories = {"lint"};
  o.category_max_size = {{"lint", 64 << 10}};
  auto c = nexxo::Cache::open(fresh_dir(), o);
  std::vector<std::string> keys;
  for (int i = 0; i < 100; i++) keys.push_back("k" + std::to_string(i));
  std::vector<nexxo::Entry> batch;
  for (const auto &k : keys) batch.push_back({"lint", k, std::string_view("[]")});
  c.batch_set(batch);
  EXPECT_EQ(c.category_stats("lint").entries, 100u);
  batch.push_back({"nope", "x", "y"});
  EXPECT_EQ(c.try_batch_set(batch), NEXXO_UNKNOWN_CATEGORY);
  std::vector<std::uint8_t> big(4096);
  for (int i = 0; i < 600; i++) {
    for (auto &b : big) b = static_cast<std::uint8_t>(std::rand());
    c.set("optimize", "o" + std::to_string(i), big);
  }
  nexxo::PolicyReport r = c.enforce_policy();
  nexxo::Stats s = c.stats();
  EXPECT_LE(s.stored_bytes, 1u << 20);
  EXPECT_EQ(r.stored_bytes_after, s.stored_bytes);
  EXPECT_GT(s.evictions, 0u);
  EXPECT_NE(c.stats_json().find("\"totals\":{"), std::string::npos);
  c.compact();
  c.compact("lint");
  c.flush();
  c.clear({"lint"});
  EXPECT_EQ(c.category_stats("lint").entries, 0u);
  c.clear();
  EXPECT_EQ(c.stats().entries, 0u);
}

TEST(Cache, ConcurrentUse) {
  auto c = nexxo::Cache::open(fresh_dir());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&c, t] {
      for (int i = 0; i < 500; i++) {
        std::string k = "t" + std::to_string(t) + "/" + std::to_string(i % 50);
        c.set("transform", k, k);
        auto v = c.get("transform", k);
        ASSERT_TRUE(v.has_value());
      }
    });
  }
  for (auto &th : threads) th.join();
  EXPECT_EQ(c.stats().entries, 200u);
}

TEST(Cache, RemoteOptionsAndStats) {
  nexxo::Options bad;
  bad.remote = nexxo::RemoteOptions{};
  bad.remote->urls = {"ftp://cache.example"};
  nexxo::Cache c;
  EXPECT_EQ(nexxo::Cache::try_open(fresh_dir(), bad, c), NEXXO_INVALID_ARGUMENT);
  bad.remote->urls = {"https://127.0.0.1:9"};
  bad.remote->ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(nexxo::Cache::try_open(fresh_dir(), bad, c), NEXXO_INVALID_ARGUMENT);
  bad.remote->ca_file.reset();
  bad.remote->headers = {{"Host", "x"}};
  EXPECT_EQ(nexxo::Cache::try_open(fresh_dir(), bad, c), NEXXO_INVALID_ARGUMENT);

  // Nothing listens on port 9 of loopback: the remote is counted, never in the way.
  nexxo::Options o;
  o.remote = nexxo::RemoteOptions{};
  o.remote->urls = {"http://127.0.0.1:9/cache"};
  o.remote->hmac_key = bytes("sixteen bytes or more");
  o.remote->retries = 0;
  o.remote->local_only = {"meta"};
  c = nexxo::Cache::open(fresh_dir(), o);
  EXPECT_EQ(c.get("parse", "k"), std::nullopt);
  c.set("parse", "k", "v");
  EXPECT_TRUE(c.remote_sync(5000));
  nexxo::RemoteStats r = c.remote_stats();
  EXPECT_EQ(r.remotes, 1u);
  EXPECT_EQ(r.errors, 1u);
  EXPECT_EQ(r.open_breakers, 1u);
  EXPECT_NE(c.stats_json().find("\"remote\":{"), std::string::npos);
}

// Options left unset keep the cache's stored limits (an open with default options never
// stores max_age 0 over them); stats_json names each limit's source; ignore_environment
// leaves NEXXO_CACHE_* out.
TEST(Cache, LimitsStoredEnvironmentIgnored) {
  const std::string dir = fresh_dir();
  {
    nexxo::Options o;
    o.max_size = 5u << 20;
    o.max_age_seconds = 3600;
    nexxo::Cache::open(dir, o);
  }
  auto has = [](const std::string &json, const std::string &part) { return json.find(part) != std::string::npos; };
  {
    auto c = nexxo::Cache::open(dir);
    const std::string j = c.stats_json();
    EXPECT_TRUE(has(j, "\"max_size\":5242880,\"max_age_secs\":3600")) << j;
    EXPECT_TRUE(has(j, "\"source\":{\"max_size\":\"stored\",\"max_age\":\"stored\"")) << j;
  }
  setenv("NEXXO_CACHE_MAX_AGE", "2h", 1);
  {
    auto c = nexxo::Cache::open(dir);
    EXPECT_TRUE(has(c.stats_json(), "\"max_age_secs\":7200")) << c.stats_json();
    nexxo::Options o;
    o.ignore_environment = true;
    auto d = nexxo::Cache::open(fresh_dir(), o);
    EXPECT_TRUE(has(d.stats_json(), "\"max_age_secs\":0")) << d.stats_json();
  }
  unsetenv("NEXXO_CACHE_MAX_AGE");
}

// stats_json has this handle's latency (1.7); Options::latency = false records none.
TEST(Cache, LatencyInStatsJson) {
  const std::string dir = fresh_dir();
  nexxo::Options o;
  o.ignore_environment = true;
  auto c = nexxo::Cache::open(dir, o);
  c.set("parse", "k", "v");
  EXPECT_NE(c.stats_json().find("\"set\":{\"count\":1,"), std::string::npos) << c.stats_json();
  o.latency = false;
  auto d = nexxo::Cache::open(fresh_dir(), o);
  EXPECT_NE(d.stats_json().find("\"latency\":{\"enabled\":false}"), std::string::npos) << d.stats_json();
}

TEST(Cache, TagsAndInvalidate) {
  auto c = nexxo::Cache::open(fresh_dir());
  c.set_tagged("transform", "a.ts", "A", {"tsconfig#1", "babel@7"});
  c.set_tagged("bundle", "main.js", "M", {"tsconfig#1"});
  c.set("parse", "b.ts", "B");
  EXPECT_EQ(c.invalidate("tsconfig#1"), 2u);
  EXPECT_EQ(c.get("transform", "a.ts"), std::nullopt);
  EXPECT_EQ(c.get("parse", "b.ts"), bytes("B"));
  EXPECT_EQ(c.try_set_tagged("parse", "x", "X", {""}), NEXXO_INVALID_ARGUMENT);
  EXPECT_THROW(c.invalidate(""), nexxo::Error);
  c.batch_set_tagged({{{"optimize", "m.js", "O"}, {"cfg#2"}}, {{"meta", "k", "v"}, {}}});
  EXPECT_EQ(c.invalidate("cfg#2"), 1u);
  EXPECT_EQ(c.get("meta", "k"), bytes("v"));
  EXPECT_EQ(c.try_batch_set_tagged({{{"meta", "x", "X"}, {"ok"}}, {{"meta", "y", "Y"}, {""}}}), NEXXO_INVALID_ARGUMENT);
  EXPECT_EQ(c.get("meta", "x"), std::nullopt);
}

TEST(Cache, DisabledFallback) {
  nexxo::Options o;
  o.fallback_disabled = true;
  auto c = nexxo::Cache::open("/proc/nexxo-cannot-be-here", o);
  c.set("parse", "k", "v");
  EXPECT_EQ(c.get("parse", "k"), std::nullopt);
  EXPECT_TRUE(c.stats().disabled);
}

}  // namespace
