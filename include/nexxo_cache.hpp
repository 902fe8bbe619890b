// nexxo_cache.hpp: a header-only C++17 interface over nexxo_cache.h.
//
// nexxo::Cache owns one nexxo_cache handle (movable, not copyable). Throwing methods
// report failures as nexxo::Error, which carries the nexxo_status; every operation also
// has a non-throwing try_ variant that returns the status. A miss is not an error:
// get() returns std::nullopt. Thread rules are the C API's: every method but the
// destructor, close() and assignment may run concurrently on one Cache.
//
// Every open reads the NEXXO_CACHE_* environment (NEXXO_CACHE_MAX_SIZE, _MAX_AGE,
// _READ_ONLY, _DISABLE, _REMOTE, _REMOTE_MODE, _REMOTE_NAME, _REMOTE_HMAC_KEY[_FILE]: the
// README's "Environment" table) unless Options::ignore_environment() is set; limits the
// options leave unset come from the environment, then from the cache's stored ones, then
// the defaults. stats_json()'s "limits" names the limits that apply and their sources.
#ifndef NEXXO_CACHE_HPP
#define NEXXO_CACHE_HPP

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "nexxo_cache.h"

namespace nexxo {

/// A failure of the library, with its status.
class Error : public std::runtime_error {
 public:
  Error(nexxo_status status, const std::string &what)
      : std::runtime_error(what + ": " + nexxo_status_str(status)), status_(status) {}
  nexxo_status status() const noexcept { return status_; }

 private:
  nexxo_status status_;
};

/// A read-only view of bytes: from std::string_view, std::string, std::vector<uint8_t>,
/// arrays, or (pointer, length).
class Bytes {
 public:
  constexpr Bytes() noexcept = default;
  constexpr Bytes(const std::uint8_t *data, std::size_t size) noexcept : data_(data), size_(size) {}
  Bytes(std::string_view s) noexcept : data_(reinterpret_cast<const std::uint8_t *>(s.data())), size_(s.size()) {}
  Bytes(const std::string &s) noexcept : Bytes(std::string_view(s)) {}
  Bytes(const char *s) noexcept : Bytes(std::string_view(s)) {}
  template <typename Range,
            typename = std::enable_if_t<std::is_same_v<std::remove_cv_t<std::remove_pointer_t<decltype(std::data(std::declval<const Range &>()))>>, std::uint8_t>>>
  Bytes(const Range &r) noexcept : data_(std::data(r)), size_(std::size(r)) {}
  constexpr const std::uint8_t *data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }

 private:
  const std::uint8_t *data_ = nullptr;
  std::size_t size_ = 0;
};

/// A writable buffer for get_into: from std::vector<uint8_t>, arrays, or (pointer, length).
class MutableBytes {
 public:
  constexpr MutableBytes(std::uint8_t *data, std::size_t size) noexcept : data_(data), size_(size) {}
  template <typename Range,
            typename = std::enable_if_t<std::is_same_v<std::remove_pointer_t<decltype(std::data(std::declval<Range &>()))>, std::uint8_t>>>
  MutableBytes(Range &r) noexcept : data_(std::data(r)), size_(std::size(r)) {}
  constexpr std::uint8_t *data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }

 private:
  std::uint8_t *data_;
  std::size_t size_;
};

/// One write of a batch. The referenced bytes must outlive the batch_set call.
struct Entry {
  std::string category;
  Bytes key;
  Bytes value;
};

/// One write of batch_set_tagged: an entry and what its value depends on (1.7).
struct TaggedEntry {
  Entry entry;
  std::vector<Bytes> tags;
};

using Stats = nexxo_stats;
using PolicyReport = nexxo_policy_report;
using RemoteStats = nexxo_remote_stats;

/// Remote cache servers behind the local store (see nexxo_options_add_remote); unset
/// fields keep the library's defaults.
struct RemoteOptions {
  std::vector<std::string> urls;  ///< http[s]://... (Bazel HTTP layout) or redis[s]://..., tried in order
  nexxo_remote_mode mode = NEXXO_REMOTE_READ_WRITE;
  std::optional<std::string> name;      ///< namespace on the servers
  std::vector<std::string> local_only;  ///< categories that never go to a remote
  std::vector<std::uint8_t> hmac_key;   ///< empty = unsigned; else at least 16 bytes
  std::optional<std::uint32_t> timeout_ms, retries, cooldown_ms;
  std::optional<std::uint64_t> ttl_seconds;
  std::optional<std::string> token;  ///< HTTP: Authorization: Bearer <token>; never printed
  std::vector<std::pair<std::string, std::string>> headers;  ///< HTTP: extra request headers
  std::optional<std::string> ca_file;  ///< TLS: PEM file of extra CAs to trust
  std::optional<std::string> proxy;    ///< HTTP: an http:// proxy; "" = none; unset = the environment's
  bool check_exists = false;           ///< ask the server before uploading; skip what it has
};

/// Open options; the defaults are the library's (see nexxo_options_new).
struct Options {
  /// Unset: the environment's, else the cache's stored limit, else 2 GiB; 0 = unbounded.
  std::optional<std::uint64_t> max_size;
  std::vector<std::pair<std::string, std::uint64_t>> category_max_size;
  /// Unset: the environment's, else the cache's stored limit, else never; 0 = never.
  std::optional<std::uint64_t> max_age_seconds;
  std::vector<std::string> categories;    ///< beyond the built-in ones
  nexxo_compression compression = NEXXO_COMPRESSION_LZ4;
  bool sync_writes = false;
  bool read_only = false;
  bool fallback_disabled = false;
  std::optional<std::uint64_t> memory_budget;
  std::optional<RemoteOptions> remote;
  bool ignore_environment = false;  ///< leave the NEXXO_CACHE_* variables out of this open
  bool latency = true;              ///< record latency histograms (stats_json's "latency"; 1.7)
};

namespace detail {
inline nexxo_status build(const Options &o, nexxo_options **out) noexcept {
  nexxo_options *opts = nexxo_options_new();
  if (!opts) return NEXXO_PANIC;
  nexxo_status s = NEXXO_OK;
  auto step = [&](nexxo_status r) {
    if (s == NEXXO_OK) s = r;
  };
  if (o.max_size) step(nexxo_options_set_max_size(opts, *o.max_size));
  for (const auto &c : o.categories) step(nexxo_options_add_category(opts, c.c_str()));
  for (const auto &l : o.category_max_size) step(nexxo_options_set_category_max_size(opts, l.first.c_str(), l.second));
  if (o.max_age_seconds) step(nexxo_options_set_max_age(opts, *o.max_age_seconds));
  step(nexxo_options_set_ignore_environment(opts, o.ignore_environment));
  step(nexxo_options_set_latency(opts, o.latency));
  step(nexxo_options_set_compression(opts, o.compression));
  step(nexxo_options_set_sync_writes(opts, o.sync_writes));
  step(nexxo_options_set_read_only(opts, o.read_only));
  step(nexxo_options_set_fallback_disabled(opts, o.fallback_disabled));
  if (o.memory_budget) step(nexxo_options_set_memory_budget(opts, *o.memory_budget));
  if (o.remote) {
    const RemoteOptions &r = *o.remote;
    for (const auto &u : r.urls) step(nexxo_options_add_remote(opts, u.c_str()));
    step(nexxo_options_set_remote_mode(opts, r.mode));
    if (r.name) step(nexxo_options_set_remote_name(opts, r.name->c_str()));
    for (const auto &c : r.local_only) step(nexxo_options_set_remote_local_only(opts, c.c_str(), true));
    if (!r.hmac_key.empty()) step(nexxo_options_set_remote_hmac_key(opts, r.hmac_key.data(), r.hmac_key.size()));
    if (r.timeout_ms) step(nexxo_options_set_remote_timeout(opts, *r.timeout_ms));
    if (r.retries) step(nexxo_options_set_remote_retries(opts, *r.retries));
    if (r.cooldown_ms) step(nexxo_options_set_remote_cooldown(opts, *r.cooldown_ms));
    if (r.ttl_seconds) step(nexxo_options_set_remote_ttl(opts, *r.ttl_seconds));
    if (r.token) step(nexxo_options_set_remote_token(opts, r.token->c_str()));
    for (const auto &h : r.headers) step(nexxo_options_add_remote_header(opts, h.first.c_str(), h.second.c_str()));
    if (r.ca_file) step(nexxo_options_set_remote_ca_file(opts, r.ca_file->c_str()));
    if (r.proxy) step(nexxo_options_set_remote_proxy(opts, r.proxy->c_str()));
    step(nexxo_options_set_remote_check_exists(opts, r.check_exists));
  }
  if (s != NEXXO_OK) {
    nexxo_options_free(opts);
    return s;
  }
  *out = opts;
  return NEXXO_OK;
}
}  // namespace detail

class Cache {
 public:
  /// An empty (closed) cache; assign an opened one to it.
  Cache() noexcept = default;
  Cache(const Cache &) = delete;
  Cache &operator=(const Cache &) = delete;
  Cache(Cache &&other) noexcept : c_(std::exchange(other.c_, nullptr)) {}
  Cache &operator=(Cache &&other) noexcept {
    if (this != &other) {
      close();
      c_ = std::exchange(other.c_, nullptr);
    }
    return *this;
  }
  ~Cache() { close(); }

  /// Opens (creating when missing) the cache in directory `path`; throws Error.
  static Cache open(const std::string &path, const Options &options = {}) {
    Cache c;
    nexxo_status s = try_open(path, options, c);
    if (s != NEXXO_OK) throw Error(s, "nexxo::Cache::open(" + path + ")");
    return c;
  }

  /// Like open, returning the status instead of throwing.
  static nexxo_status try_open(const std::string &path, const Options &options, Cache &out) noexcept {
    nexxo_options *opts = nullptr;
    nexxo_status s = detail::build(options, &opts);
    if (s != NEXXO_OK) return s;
    nexxo_cache *handle = nullptr;
    s = nexxo_cache_open(path.c_str(), opts, &handle);
    nexxo_options_free(opts);
    if (s == NEXXO_OK) {
      out.close();
      out.c_ = handle;
    }
    return s;
  }

  bool is_open() const noexcept { return c_ != nullptr; }
  nexxo_cache *handle() const noexcept { return c_; }

  /// Closes the cache (persisting what was acknowledged); a no-op when closed.
  void close() noexcept {
    if (c_) nexxo_cache_close(std::exchange(c_, nullptr));
  }

  /// The value, or std::nullopt on a miss; throws Error.
  std::optional<std::vector<std::uint8_t>> get(const std::string &category, Bytes key) const {
    std::optional<std::vector<std::uint8_t>> out;
    check(try_get(category, key, out), "get", category);
    return out;
  }

  /// Like get; `out` is left empty on a miss. Returns NEXXO_OK or NEXXO_NOT_FOUND, or the error.
  nexxo_status try_get(const std::string &category, Bytes key, std::optional<std::vector<std::uint8_t>> &out) const noexcept {
    nexxo_bytes b{nullptr, 0};
    nexxo_status s = nexxo_cache_get(c_, category.c_str(), key.data(), key.size(), &b);
    out.reset();
    if (s == NEXXO_OK) {
      try {
        out.emplace(b.data, b.data + b.len);
      } catch (...) {
        s = NEXXO_PANIC;  // out of memory
      }
      nexxo_bytes_free(&b);
    }
    return s;
  }

  /// Reads into `buf`: the value's length, or std::nullopt on a miss. Throws Error with
  /// NEXXO_BUFFER_TOO_SMALL when it does not fit (try_get_into reports the size needed).
  std::optional<std::size_t> get_into(const std::string &category, Bytes key, MutableBytes buf) const {
    std::size_t n = 0;
    nexxo_status s = try_get_into(category, key, buf, n);
    if (s == NEXXO_NOT_FOUND) return std::nullopt;
    check(s, "get_into", category);
    return n;
  }

  /// Like get_into: on NEXXO_OK `len` is the value's length, on NEXXO_BUFFER_TOO_SMALL the size needed.
  nexxo_status try_get_into(const std::string &category, Bytes key, MutableBytes buf, std::size_t &len) const noexcept {
    return nexxo_cache_get_into(c_, category.c_str(), key.data(), key.size(), buf.data(), buf.size(), &len);
  }

  void set(const std::string &category, Bytes key, Bytes value) { check(try_set(category, key, value), "set", category); }
  nexxo_status try_set(const std::string &category, Bytes key, Bytes value) noexcept {
    return nexxo_cache_set(c_, category.c_str(), key.data(), key.size(), value.data(), value.size());
  }

  /// set with tags (what the value depends on): invalidate() of any of them removes the
  /// entry; overwriting the key replaces its tags (1.7).
  void set_tagged(const std::string &category, Bytes key, Bytes value, const std::vector<Bytes> &tags) {
    check(try_set_tagged(category, key, value, tags), "set", category);
  }
  nexxo_status try_set_tagged(const std::string &category, Bytes key, Bytes value, const std::vector<Bytes> &tags) noexcept {
    std::vector<nexxo_tag> list;
    try {
      list.reserve(tags.size());
    } catch (...) {
      return NEXXO_INVALID_ARGUMENT;
    }
    for (const Bytes &t : tags) list.push_back(nexxo_tag{t.data(), t.size()});
    return nexxo_cache_set_tagged(c_, category.c_str(), key.data(), key.size(), value.data(), value.size(), list.data(), list.size());
  }

  /// Removes every entry carrying `tag`, in every category, atomically: how many went.
  std::uint64_t invalidate(Bytes tag) {
    std::uint64_t n = 0;
    check(nexxo_cache_invalidate(c_, tag.data(), tag.size(), &n, nullptr), "invalidate", "");
    return n;
  }

  void remove(const std::string &category, Bytes key) { check(try_remove(category, key), "remove", category); }
  nexxo_status try_remove(const std::string &category, Bytes key) noexcept {
    return nexxo_cache_delete(c_, category.c_str(), key.data(), key.size());
  }

  /// Stores all entries atomically, or none.
  void batch_set(const std::vector<Entry> &entries) { check(try_batch_set(entries), "batch_set", ""); }
  nexxo_status try_batch_set(const std::vector<Entry> &entries) noexcept {
    try {
      std::vector<nexxo_entry> c;
      c.reserve(entries.size());
      for (const auto &e : entries) c.push_back({e.category.c_str(), e.key.data(), e.key.size(), e.value.data(), e.value.size()});
      return nexxo_cache_batch_set(c_, c.data(), c.size());
    } catch (...) {
      return NEXXO_PANIC;
    }
  }

  /// batch_set with each entry's tags; atomic, validated whole (1.7).
  void batch_set_tagged(const std::vector<TaggedEntry> &entries) { check(try_batch_set_tagged(entries), "batch_set", ""); }
  nexxo_status try_batch_set_tagged(const std::vector<TaggedEntry> &entries) noexcept {
    try {
      std::vector<nexxo_entry> c;
      std::vector<std::vector<nexxo_tag>> tags(entries.size());
      std::vector<nexxo_tags> lists;
      c.reserve(entries.size());
      lists.reserve(entries.size());
      for (std::size_t i = 0; i < entries.size(); i++) {
        const Entry &e = entries[i].entry;
        c.push_back({e.category.c_str(), e.key.data(), e.key.size(), e.value.data(), e.value.size()});
        for (const Bytes &t : entries[i].tags) tags[i].push_back(nexxo_tag{t.data(), t.size()});
        lists.push_back(nexxo_tags{tags[i].data(), tags[i].size()});
      }
      return nexxo_cache_batch_set_tagged(c_, c.data(), lists.data(), c.size());
    } catch (...) {
      return NEXXO_PANIC;
    }
  }

  Stats stats() const {
    Stats s{};
    check(nexxo_cache_stats(c_, &s), "stats", "");
    return s;
  }
  nexxo_status try_stats(Stats &out) const noexcept { return nexxo_cache_stats(c_, &out); }

  Stats category_stats(const std::string &category) const {
    Stats s{};
    check(nexxo_cache_category_stats(c_, category.c_str(), &s), "category_stats", category);
    return s;
  }

  /// The remote tier's statistics (all zero without remotes).
  RemoteStats remote_stats() const {
    RemoteStats r{};
    check(nexxo_cache_remote_stats(c_, &r), "remote_stats", "");
    return r;
  }

  /// Waits for queued uploads, at most `timeout_ms`: true when none are left.
  bool remote_sync(std::uint32_t timeout_ms) const {
    nexxo_status s = nexxo_cache_remote_sync(c_, timeout_ms);
    if (s == NEXXO_TIMED_OUT) return false;
    check(s, "remote_sync", "");
    return true;
  }

  /// The statistics as JSON text: totals, every category, "limits" (each with its
  /// source: option, environment, stored or default) and "remote" when configured.
  std::string stats_json() const {
    nexxo_bytes b{nullptr, 0};
    check(nexxo_cache_stats_json(c_, &b), "stats_json", "");
    std::string out(reinterpret_cast<const char *>(b.data), b.len);
    nexxo_bytes_free(&b);
    return out;
  }

  PolicyReport enforce_policy() {
    PolicyReport r{};
    check(nexxo_cache_enforce_policy(c_, &r), "enforce_policy", "");
    return r;
  }
  nexxo_status try_enforce_policy(PolicyReport &out) noexcept { return nexxo_cache_enforce_policy(c_, &out); }

  /// Compacts one category, or all.
  void compact(const std::optional<std::string> &category = std::nullopt) {
    check(try_compact(category), "compact", category.value_or(""));
  }
  nexxo_status try_compact(const std::optional<std::string> &category = std::nullopt) noexcept {
    return nexxo_cache_compact(c_, category ? category->c_str() : nullptr);
  }

  /// Clears the named categories, or every category when the list is empty.
  void clear(const std::vector<std::string> &categories = {}) { check(try_clear(categories), "clear", ""); }
  nexxo_status try_clear(const std::vector<std::string> &categories = {}) noexcept {
    try {
      std::vector<const char *> names;
      names.reserve(categories.size());
      for (const auto &c : categories) names.push_back(c.c_str());
      return nexxo_cache_clear(c_, names.empty() ? nullptr : names.data(), names.size());
    } catch (...) {
      return NEXXO_PANIC;
    }
  }

  void flush() { check(nexxo_cache_flush(c_), "flush", ""); }
  nexxo_status try_flush() noexcept { return nexxo_cache_flush(c_); }

 private:
  static void check(nexxo_status s, const char *op, const std::string &category) {
    if (s == NEXXO_OK || s == NEXXO_NOT_FOUND) return;
    std::string what = std::string("nexxo::Cache::") + op;
    if (!category.empty()) what += "(" + category + ")";
    throw Error(s, what);
  }

  nexxo_cache *c_ = nullptr;
};

}  // namespace nexxo

#endif  // NEXXO_CACHE_HPP
