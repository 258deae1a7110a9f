#include "origin/remote_publish.h"

#include <fcntl.h>
#include <fmt/format.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>
#include <charconv>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/path_rules.h"
#include "net/http_client.h"
#include "net/runtime.h"
#include "origin/origin_server.h"
#include "store/node_layout.h"
#include "store/posix_file.h"

namespace fleetcast::origin {
namespace {

namespace asio = boost::asio;
using net::awaitable;
using net::HttpClient;
using net::HttpClientOptions;
using net::HttpClientRequest;
using net::HttpResponse;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kUploadAttempts = 3;

// An Error for a non-2xx answer of the origin, with its JSON "error".
Error OriginError(const HttpResponse& r, std::string subject) {
  std::string message;
  json j = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) {
    message = j["error"].get<std::string>();
  } else {
    message = r.body.substr(0, 200);
  }
  ErrorCode code = ErrorCode::kIo;
  switch (r.status) {
    case 400:
    case 413:
      code = ErrorCode::kInvalidArgument;
      break;
    case 403:
      code = ErrorCode::kSignature;
      break;
    case 404:
      code = ErrorCode::kNotFound;
      break;
    case 409:
      code = ErrorCode::kAlreadyExists;
      break;
    case 507:
      code = ErrorCode::kNoSpace;
      break;
    default:
      break;
  }
  return Error{code, std::move(subject),
               fmt::format("origin answered {}: {}", r.status, message), 0};
}

// One request on a fresh connection, on the calling strand. (Coroutines
// spawned from RemotePublish are noinline: GCC 12 reports a false
// -Wmismatched-new-delete when a coroutine's ramp is inlined there.)
[[gnu::noinline]] awaitable<Result<HttpResponse>> Request(
    net::HttpUrl url, HttpClientRequest request, HttpClientOptions options) {
  HttpClient client(co_await asio::this_coro::executor, url.host, url.port,
                    options);
  co_return co_await client.Send(std::move(request));
}

// Reads chunk bytes from the published tree, keeping the last file open.
class ChunkReader {
 public:
  explicit ChunkReader(const std::string& dir) : dir_(dir) {}

  Result<std::string> Read(const std::string& rel, uint64_t offset,
                           uint32_t length) {
    std::string path = dir_ + "/" + rel;
    if (!fd_.valid() || path != path_) {
      auto fd = Open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
      if (!fd) return std::unexpected(fd.error());
      fd_ = std::move(*fd);
      path_ = path;
    }
    std::string out(length, '\0');
    auto n = PreadFull(
        fd_.get(),
        std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), length),
        offset, path);
    if (!n) return std::unexpected(n.error());
    if (*n != length) {
      return MakeError(ErrorCode::kIo, path,
                       "file shrank after it was hashed; publish a stable "
                       "tree (e.g. a snapshot)");
    }
    return out;
  }

 private:
  const std::string& dir_;
  std::string path_;
  UniqueFd fd_;
};

struct UploadState {
  const std::string& dir;
  const ChunkLayout& layout;
  std::vector<uint32_t> missing;
  net::HttpUrl url;
  HttpClientOptions client_options;

  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::atomic<uint64_t> stored_chunks{0};
  std::atomic<uint64_t> stored_bytes{0};
  std::atomic<uint64_t> done_bytes{0};
  std::mutex mu;
  std::optional<Error> error;  // guarded by mu

  void Fail(Error e) {
    std::lock_guard lock(mu);
    if (!error) error = std::move(e);
    failed.store(true);
  }
};

// PUTs one chunk, retrying on a fresh connection after network errors.
[[gnu::noinline]] awaitable<Result<HttpResponse>> Put(HttpClient& client,
                                                      const Digest& hash,
                                                      std::string body) {
  for (int attempt = 1;; ++attempt) {
    HttpClientRequest request;
    request.method = "PUT";
    request.target = "/v1/chunks/" + hash.Hex();
    request.headers.Set("Content-Type", "application/octet-stream");
    request.body = attempt < kUploadAttempts ? body : std::move(body);
    auto r = co_await client.Send(std::move(request));
    if (r || r.error().code != ErrorCode::kIo || attempt == kUploadAttempts) {
      co_return r;
    }
    client.Close();
  }
}

// Uploads the missing chunk number `i` of the queue.
[[gnu::noinline]] awaitable<Status> UploadOne(net::IoRuntime& rt,
                                              UploadState& st,
                                              HttpClient& client,
                                              ChunkReader& reader, size_t i) {
  const uint32_t index = st.missing[i];
  const uint32_t k = st.layout.positions(index)[0];
  const ManifestEntry& entry =
      st.layout.manifest().entries[st.layout.entry_of(k)];
  const uint64_t offset = st.layout.offset_of(k);
  const uint32_t length = st.layout.length(index);
  const Digest hash = st.layout.hash(index);

  auto data = co_await rt.OffloadToWorkers(
      [&] { return reader.Read(entry.path, offset, length); });
  if (!data) co_return std::unexpected(data.error());
  Result<HttpResponse> r = co_await Put(client, hash, std::move(*data));
  if (!r) co_return std::unexpected(r.error());
  if (r->status == 400 && r->body.find("hash_mismatch") != std::string::npos) {
    co_return std::unexpected(
        Error{ErrorCode::kCorrupt, st.dir + "/" + entry.path,
              fmt::format("changed after it was hashed (the chunk at offset "
                          "{} no longer matches); publish a stable tree "
                          "(e.g. a snapshot)",
                          offset),
              0});
  }
  if (r->status == 201) {
    st.stored_chunks.fetch_add(1);
    st.stored_bytes.fetch_add(length);
  } else if (r->status != 200) {
    co_return std::unexpected(OriginError(*r, "/v1/chunks/" + hash.Hex()));
  }
  st.done_bytes.fetch_add(length);
  co_return Status{};
}

// Uploads missing chunks, taking the next one from the shared queue, until
// the queue is empty or some stream failed.
[[gnu::noinline]] awaitable<void> UploadStream(net::IoRuntime& rt,
                                               UploadState& st) {
  HttpClient client(co_await asio::this_coro::executor, st.url.host,
                    st.url.port, st.client_options);
  ChunkReader reader(st.dir);
  while (!st.failed.load()) {
    const size_t i = st.next.fetch_add(1);
    if (i >= st.missing.size()) break;
    Status done = co_await UploadOne(rt, st, client, reader, i);
    if (!done) st.Fail(done.error());
  }
}

}  // namespace

std::string NextLabelAfter(const std::vector<std::string>& labels) {
  uint64_t max = 0;
  for (const auto& label : labels) {
    if (label.size() < 2 || label[0] != 'v') continue;
    uint64_t n = 0;
    auto [p, ec] =
        std::from_chars(label.data() + 1, label.data() + label.size(), n);
    if (ec == std::errc() && p == label.data() + label.size()) {
      max = std::max(max, n);
    }
  }
  return fmt::format("v{}", max + 1);
}

Result<PublishResult> RemotePublish(const std::string& dir,
                                    const SigningKey& key,
                                    const RemotePublishOptions& options) {
  const auto start = Clock::now();
  if (auto st = ValidateDatasetName(options.dataset); !st) {
    return std::unexpected(st.error());
  }
  if (!options.label.empty()) {
    if (auto st = ValidateLabel(options.label); !st) {
      return std::unexpected(st.error());
    }
  }
  if (auto st = options.chunking.Validate(); !st) {
    return std::unexpected(st.error());
  }
  if (options.chunking.max_size > kMaxUploadChunkBytes) {
    return MakeError(ErrorCode::kInvalidArgument, "--chunk-max",
                     "a remote publish uploads chunks of at most 16 MiB");
  }
  if (options.streams < 1 || options.streams > 64) {
    return MakeError(ErrorCode::kInvalidArgument, "--streams",
                     "must be between 1 and 64");
  }
  auto url = net::ParseHttpUrl(options.origin_url);
  if (!url) return std::unexpected(url.error());

  net::IoRuntime rt(net::IoRuntimeOptions{
      .io_threads = 1, .worker_threads = std::max(2, options.streams)});
  rt.Start();
  HttpClientOptions client_options;
  client_options.connect_timeout = options.timeout;
  client_options.io_timeout = options.timeout;
  client_options.max_body_bytes = 256u << 20;  // a manifest's missing list
  auto call = [&](std::string method, std::string target, std::string body,
                  std::string content_type) -> Result<HttpResponse> {
    HttpClientRequest request;
    request.method = std::move(method);
    request.target = std::move(target);
    request.body = std::move(body);
    if (!content_type.empty()) {
      request.headers.Set("Content-Type", std::move(content_type));
    }
    return rt.BlockOn(Request(*url, std::move(request), client_options));
  };

  // 1. The dataset's versions: the label to use and the parent.
  const std::string versions_target =
      "/v1/datasets/" + options.dataset + "/versions";
  auto listed = call("GET", versions_target, "", "");
  if (!listed) return std::unexpected(listed.error());
  if (listed->status != 200) {
    return std::unexpected(OriginError(*listed, versions_target));
  }
  json versions = json::parse(listed->body, nullptr, false);
  if (!versions.is_array()) {
    return MakeError(ErrorCode::kCorrupt, versions_target,
                     "the origin's answer is not a JSON array");
  }
  std::vector<std::string> labels;
  std::optional<Digest> parent;
  for (const auto& v : versions) {
    if (!v.is_object() || !v.contains("label") || !v["label"].is_string() ||
        !v.contains("root") || !v["root"].is_string()) {
      return MakeError(ErrorCode::kCorrupt, versions_target,
                       "malformed version in the origin's answer");
    }
    labels.push_back(v["label"].get<std::string>());
    auto root = Digest::FromHex(v["root"].get<std::string>());
    if (!root) return std::unexpected(root.error());
    parent = *root;  // oldest first: the last one is the latest
  }
  std::string label =
      options.label.empty() ? NextLabelAfter(labels) : options.label;
  if (std::find(labels.begin(), labels.end(), label) != labels.end()) {
    return MakeError(ErrorCode::kAlreadyExists,
                     fmt::format("{}@{}", options.dataset, label),
                     "label already published; choose another --label");
  }

  // 2. Scan, chunk, hash and seal locally; nothing is stored.
  SealTreeOptions seal;
  seal.header.dataset = options.dataset;
  seal.header.label = label;
  seal.header.created_unix_s = options.created_unix_s;
  seal.header.chunking = options.chunking;
  seal.header.parent = parent;
  seal.threads = options.threads;
  seal.on_progress = options.on_hash_progress;
  auto sealed = SealTree(dir, key, seal);
  if (!sealed) return std::unexpected(sealed.error());
  const Digest root = sealed->sealed.root;

  // 3. Send the manifest; learn what the origin lacks.
  auto posted = call("POST", "/v1/publish/manifest",
                     std::string(sealed->sealed.envelope.begin(),
                                 sealed->sealed.envelope.end()),
                     "application/octet-stream");
  if (!posted) return std::unexpected(posted.error());
  if (posted->status != 200) {
    return std::unexpected(OriginError(*posted, "/v1/publish/manifest"));
  }
  json answer = json::parse(posted->body, nullptr, false);
  if (!answer.is_object() || answer.value("root", "") != root.Hex() ||
      !answer.contains("missing") || !answer["missing"].is_array()) {
    return MakeError(ErrorCode::kCorrupt, "/v1/publish/manifest",
                     "unexpected answer from the origin");
  }

  const uint64_t bytes = sealed->manifest.ContentBytes();
  const uint64_t files = sealed->manifest.FileCount();
  const uint64_t chunk_refs = sealed->manifest.chunks.size();
  auto layout = ChunkLayout::Build(
      std::make_shared<const Manifest>(std::move(sealed->manifest)));
  if (!layout) return std::unexpected(layout.error());

  // 4. Upload the missing chunks over several streams.
  UploadState state{dir, **layout, {}, *url, client_options};
  uint64_t missing_bytes = 0;
  {
    std::vector<bool> seen((*layout)->distinct_count());
    for (const auto& v : answer["missing"]) {
      if (!v.is_number_unsigned() ||
          v.get<uint64_t>() >= (*layout)->distinct_count() ||
          seen[v.get<uint32_t>()]) {
        return MakeError(ErrorCode::kCorrupt, "/v1/publish/manifest",
                         "bad chunk index in the origin's missing list");
      }
      const uint32_t index = v.get<uint32_t>();
      seen[index] = true;
      state.missing.push_back(index);
      missing_bytes += (*layout)->length(index);
    }
  }
  std::vector<std::future<void>> streams;
  const int stream_count = static_cast<int>(std::min<size_t>(
      static_cast<size_t>(options.streams), state.missing.size()));
  for (int s = 0; s < stream_count; ++s) {
    streams.push_back(asio::co_spawn(
        asio::make_strand(rt.io()), UploadStream(rt, state), asio::use_future));
  }
  for (auto& f : streams) {
    while (f.wait_for(std::chrono::milliseconds(100)) !=
           std::future_status::ready) {
      if (options.on_upload_progress) {
        options.on_upload_progress(state.done_bytes.load(), missing_bytes);
      }
    }
    try {
      f.get();
    } catch (const std::exception& e) {
      state.Fail(Error{ErrorCode::kInternal, "upload", e.what(), 0});
    }
  }
  if (options.on_upload_progress) {
    options.on_upload_progress(state.done_bytes.load(), missing_bytes);
  }
  if (state.error) return std::unexpected(*state.error);

  // 5. Commit.
  json commit;
  commit["dataset"] = options.dataset;
  commit["root"] = root.Hex();
  commit["label"] = label;
  auto committed =
      call("POST", "/v1/publish/commit", commit.dump(), "application/json");
  if (!committed) return std::unexpected(committed.error());
  if (committed->status != 200) {
    return std::unexpected(OriginError(*committed, "/v1/publish/commit"));
  }
  rt.Stop();

  PublishResult result;
  result.root = root;
  result.dataset = options.dataset;
  result.label = label;
  result.files = files;
  result.bytes = bytes;
  result.chunks = chunk_refs;
  result.new_chunks = state.stored_chunks.load();
  result.new_bytes = state.stored_bytes.load();
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace fleetcast::origin
